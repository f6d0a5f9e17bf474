"""The readable summary of a run: one Markdown file a person can read or attach to a release."""

import datetime
import json
from collections import Counter
from pathlib import Path
from typing import Any

from harness.report.categories import categorise
from harness.targets import redact_url

_TELLING = ("step ", "received:", "mismatch:", "broker breaks", "setup error")


def _failure_gist(detail: str) -> str:
    """The lines of a failure that say what went wrong: the step, what arrived, the mismatch."""
    lines = [line.strip() for line in detail.splitlines() if line.strip().startswith(_TELLING)]
    return " / ".join(lines or detail.strip().splitlines()[:1]).replace("|", "\\|")


def write_summary(directory: Path, target: Any, results: dict[str, dict[str, str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for r in results.values():  # why it did not pass: violation, documented deviation, setup error, timeout
        r["category"] = categorise(r["verdict"], r["detail"]) or ""
    totals = Counter(r["verdict"] for r in results.values())
    kinds = Counter(r["category"] for r in results.values() if r["category"])
    where = redact_url(target.spec.url) if target.spec.url else f"launched by the harness ({target.spec.launch})"
    lines = [
        f"# MQTT conformance: {target.spec.name}",
        "",
        f"- target: {target.spec.name} — {where}",
        f"- broker version: {target.version or 'not reported'}",
        f"- profile: {target.profile.name}",
        f"- run at: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC",
        "- totals: " + ", ".join(f"{count} {verdict}" for verdict, count in sorted(totals.items())),
        *(["- not passed, by kind: " + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))] if kinds else []),
        "",
        "| scenario | MQTT | verdict | checks | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for nodeid in sorted(results):
        r = results[nodeid]
        detail = _failure_gist(r["detail"]) if r["verdict"] in ("failed", "error") else r["detail"].replace("|", "\\|")
        if r.get("branch"):  # an either-or scenario: which way the broker went
            detail = f"took: {r['branch']}" + (f" · {detail}" if detail else "")
        lines.append(f"| `{nodeid}` {r['title']} | {r['protocol']} | {r['verdict']} | {r['refs']} | {detail} |")
    path = directory / "summary.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    document = {
        "target": target.spec.name,
        "version": target.version,
        "profile": target.profile.name,
        "where": where,
        "results": results,
    }
    (directory / "results.json").write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    return path
