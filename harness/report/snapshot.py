"""A committed, dated snapshot of a comparison (docs/vendor-comparison.md), the run behind it, and
the check that a fresh run still says the same.

    harness compare reports --run reference,mosquitto,amqtt --snapshot docs/vendor-comparison.md
    harness compare reports --run reference,mosquitto,amqtt --check docs/vendor-comparison.md

The snapshot is the comparison's Markdown, uncut, under a header with the date; the check compares
everything but the header line that carries the date, so a snapshot goes stale the day a broker,
a scenario or a baseline changes a verdict, and the check says which lines moved.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import difflib
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

from harness.report.compare import Comparison, markdown

DATED = "Snapshot taken on "


def snapshot_text(comparison: Comparison, today: datetime.date | None = None) -> str:
    names = ",".join(t.name for t in comparison.targets)
    day = (today or datetime.date.today()).isoformat()
    return "\n".join([
        "# Vendor comparison",
        "",
        f"{DATED}{day} by `harness compare reports --run {names} --snapshot docs/vendor-comparison.md`",
        "",
        "Every scenario of `scenarios/` against each target started by the harness on this machine (Debian 12,",
        "loopback). A deviation is a failure the target's baseline (`harness/suite/baselines/<target>.yaml`) documents with a",
        "reason; a skip is a scenario the target's profile says does not apply. CI reruns this and fails when",
        "a verdict moves (`--check`).",
        "",
        markdown(comparison, limit=None, branches=False),
    ])


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(DATED)]


def write_snapshot(comparison: Comparison, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(snapshot_text(comparison), encoding="utf-8")
    return path


def _in_recorded_order(comparison: Comparison, recorded: list[str]) -> Comparison:
    """The comparison with its targets in the snapshot's column order: `--run a,b` orders columns as
    named, a results directory alphabetically, and the order of the columns is not a verdict."""
    header = next((line for line in recorded if line.startswith("| | **")), "")
    order = re.findall(r"\*\*([^*]+)\*\*", header)
    if sorted(order) != sorted(t.name for t in comparison.targets):
        return comparison  # other targets: the diff shows it
    return dataclasses.replace(comparison, targets=sorted(comparison.targets, key=lambda t: order.index(t.name)))


def check_snapshot(comparison: Comparison, path: Path) -> bool:
    """True if `path` says what this comparison says; otherwise print the lines that moved."""
    if not path.is_file():
        print(f"harness compare: no snapshot at {path}; write one with --snapshot {path}", file=sys.stderr)
        return False
    recorded = _body(path.read_text(encoding="utf-8"))
    fresh = _body(snapshot_text(_in_recorded_order(comparison, recorded)))
    if fresh == recorded:
        return True
    diff = list(difflib.unified_diff(recorded, fresh, str(path), "this run", n=0, lineterm=""))
    print(f"harness compare: {path} no longer matches this run ({sum(1 for d in diff if d[:1] in '+-') - 2} lines moved); "
          f"rewrite it with --snapshot {path}", file=sys.stderr)
    print("\n".join(diff[:60]), file=sys.stderr)
    return False


def not_installed_reason(run_dir: Path) -> str | None:
    """The reason, if the run in run_dir skipped everything because its broker is not installed here."""
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["results"].values()
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    details = {str(r.get("detail", "")) for r in results if isinstance(r, dict) and r.get("verdict") == "skipped"}
    if not results or len(details) != 1 or len(results) != sum(1 for r in results if r.get("verdict") == "skipped"):
        return None
    detail = details.pop()
    return detail.removeprefix("Skipped: ") if " is not installed here: " in detail else None


def run_targets(
    targets: list[str], results: Path, workers: str, scenarios: str | None = None, transport: str | None = None,
    jobs: int = 1,
) -> int:
    """Run the suite against each target into results/<target>, as a plain `pytest` here would choose
    it (the folder's scenarios, else the built-in suite) unless `scenarios` names a path; 0 if every
    run passed. `jobs`: how many of those runs at once (each launches its own broker on its own
    ports); the output of each is printed whole when it ends, so runs do not interleave.

    A target whose broker is not installed here is not a failure of the comparison: its column shows
    every scenario skipped with that reason, and the run says so on one line."""
    def command(target: str) -> list[str]:
        argv = [sys.executable, "-m", "pytest", *([scenarios] if scenarios else []), "-q",
                "-p", "no:cacheprovider", "-n", workers, "--target", target,
                # One argument: pytest takes a separate path-like argument for a path to collect when it
                # looks for its rootdir, and an absolute one outside the folder loses the folder's ini file.
                f"--report-dir={results / target}"]
        return argv + (["--transport", transport] if transport else [])

    def finished(target: str, code: int) -> int:
        reason = not_installed_reason(results / target)
        if reason:
            print(f"harness compare: {reason}; its column shows every scenario skipped", file=sys.stderr)
            return 0
        if code not in (0, 5):  # 5: nothing collected, which load() then reports
            print(f"harness compare: the run against {target} exited {code}", file=sys.stderr)
            return code
        return 0

    commands = {target: command(target) for target in targets}
    worst = 0
    if jobs <= 1:
        for target in targets:
            print("$ " + " ".join(commands[target][1:]), flush=True)
            worst = worst or finished(target, subprocess.call(commands[target]))
        return worst
    lock = threading.Lock()

    def run_captured(target: str) -> int:
        done = subprocess.run(commands[target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                              text=True, errors="replace")
        with lock:
            print("$ " + " ".join(commands[target][1:]) + "\n" + done.stdout, end="", flush=True)
            return finished(target, done.returncode)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(run_captured, targets))
    return next((code for code in codes if code), 0)
