"""Vendor comparison: several runs' results.json side by side, as HTML and as a pull-request comment.

    harness compare reports/reference reports/mosquitto      # or: harness compare reports
    -> reports/comparison.html, reports/comparison.md

Rows are scenarios, grouped by area and then by the statement they check first; columns are
targets. A cell is pass, fail, error (harness or setup), deviation (a failure the target's
baseline documents), intermittent (listed in the baseline as failing in some runs; the cell says
so whichever way this run went, so that a snapshot stays true), stale (baselined but passed),
skipped (with the reason) or "not run".
Each failure also gets its one-line reason. The HTML is one static file with no script.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import spec
from harness.report.categories import DEVIATION_PREFIX, INTERMITTENT_PREFIX, STALE, categorise
from harness.wire import Version

STATUSES = ("pass", "fail", "error", "deviation", "intermittent", "stale", "skipped", "not run")
# Markdown (GitHub renders emoji); the HTML uses the words and colours, as a headless browser may lack emoji fonts.
SYMBOLS = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error", "deviation": "📄 deviation",
           "intermittent": "🔀 intermittent",
           "stale": "❗ stale", "skipped": "⏭️ skipped", "not run": "· not run"}
MARKDOWN_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
_REASON_LINES = ("mismatch:", "broker breaks", "received:", "expected:")


@dataclass
class Cell:
    status: str
    reason: str = ""
    branch: str = ""  # a pass of an either-or scenario: which way the broker went (results.json "branch")


@dataclass
class Row:
    key: str  # scenario node id without a [target] suffix
    title: str
    area: str
    protocol: str
    refs: list[str]
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def statement(self) -> str:
        return self.refs[0] if self.refs else "(no statement)"

    @property
    def uniform(self) -> bool:
        """Every target has the same verdict, and passes took the same branch: brokers that pass an either-or
        scenario in different ways are a difference too."""
        return len({(c.status, c.branch) for c in self.cells.values()}) <= 1


@dataclass
class Target:
    name: str
    version: str | None
    profile: str
    where: str


@dataclass
class Comparison:
    targets: list[Target]
    rows: list[Row]

    def totals(self, target: str) -> Counter[str]:
        return Counter(row.cells.get(target, Cell("not run")).status for row in self.rows)


def _status(result: dict[str, Any]) -> str:
    verdict, detail = result.get("verdict", ""), result.get("detail", "")
    category = result.get("category") or categorise(verdict, detail)
    if verdict == "passed":
        return "pass"
    if verdict == "skipped":
        return "skipped"
    if verdict in ("xfailed", "xpassed") and str(detail).startswith(INTERMITTENT_PREFIX):
        return "intermittent"
    if verdict == "xfailed":
        return "deviation"
    if verdict == "xpassed" or category == STALE:
        return "stale"
    if verdict == "error" or category == "harness or setup error":
        return "error"
    return "fail"


def one_line(result: dict[str, Any], status: str) -> str:
    """Why a cell is not a pass, in one line."""
    detail = str(result.get("detail", "")).strip()
    if status in ("deviation", "intermittent", "skipped"):
        text = detail.split(": ", 1)[1] if detail.startswith((DEVIATION_PREFIX, INTERMITTENT_PREFIX)) else detail
        return " ".join(text.split())
    if status == "stale":
        return "listed in the baseline but passed: remove the entry"
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    for prefix in _REASON_LINES:
        for line in lines:
            if line.startswith(prefix):
                return line
    return lines[0] if lines else ""


def _documents(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    # One run over several targets writes {"targets": [...]}: one document per target.
    return list(document.get("targets", [document]))


def _row_key(nodeid: str, target: str) -> str:
    suffix = f"[{target}]"
    return nodeid[: -len(suffix)] if nodeid.endswith(suffix) else nodeid


def load(directories: list[Path]) -> Comparison:
    """Read each run's results.json (a directory may also hold one run per subdirectory)."""
    documents: list[dict[str, Any]] = []
    for directory in directories:
        # The runs below a parent (reports/<target>/), then the parent's own run unless one of those
        # is for the same target (reports/ and reports/mosquitto both from mosquitto).
        below = [d for path in sorted(directory.glob("*/results.json")) for d in _documents(path)]
        own = _documents(directory / "results.json") if (directory / "results.json").is_file() else []
        names = {d["target"] for d in below}
        found = below + [d for d in own if d["target"] not in names]
        if not found:
            raise SystemExit(f"harness compare: no results.json in {directory} or its subdirectories")
        documents.extend(found)
    targets: list[Target] = []
    rows: dict[str, Row] = {}
    for document in documents:
        name = str(document["target"])
        if any(t.name == name for t in targets):
            raise SystemExit(f"harness compare: target {name!r} appears twice; compare one run per target")
        targets.append(Target(name, document.get("version"), document.get("profile", ""), document.get("where", "")))
        for nodeid, result in document["results"].items():
            key = _row_key(nodeid, name)
            refs = [r.strip() for r in str(result.get("refs", "")).split(",") if r.strip()]
            area = result.get("area") or key.rsplit("/", 1)[-1].split(".yaml")[0]
            row = rows.setdefault(key, Row(key, result.get("title", ""), area, result.get("protocol", ""), refs))
            status = _status(result)
            row.cells[name] = Cell(status, "" if status == "pass" else one_line(result, status),
                                   str(result.get("branch", "")) if status == "pass" else "")
    ordered = sorted(rows.values(), key=lambda r: (r.area, r.protocol, r.statement, r.key))
    return Comparison(targets, ordered)


def _paraphrase(row: Row) -> str:
    if not row.refs:
        return ""
    try:
        statement = spec.lookup(Version.parse(row.protocol), row.refs[0])
    except (ValueError, KeyError):
        return ""
    return statement.paraphrase if statement is not None else ""


# -- Markdown ----------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_cell(cell: Cell) -> str:
    return SYMBOLS[cell.status] + (f" ({_md(cell.branch)})" if cell.branch else "")


def markdown(comparison: Comparison, limit: int | None = MARKDOWN_LIMIT, branches: bool = True) -> str:
    """The comparison in Markdown, cut to `limit` characters (None: whole, for a committed snapshot).

    `branches`: a pass cell of an either-or scenario names the way the broker went. A committed
    snapshot leaves them out: it records verdicts, and a broker may take either way from run to run."""
    names = [t.name for t in comparison.targets]
    if not branches:
        comparison = Comparison(comparison.targets, [
            Row(r.key, r.title, r.area, r.protocol, r.refs, {n: Cell(c.status, c.reason) for n, c in r.cells.items()})
            for r in comparison.rows])
    lines = ["## MQTT conformance: " + " vs ".join(names), ""]
    lines += ["| | " + " | ".join(f"**{n}**" for n in names) + " |", "| --- |" + " --- |" * len(names)]
    lines.append("| version | " + " | ".join(_md(t.version or "not reported") for t in comparison.targets) + " |")
    lines.append("| profile | " + " | ".join(_md(t.profile) for t in comparison.targets) + " |")
    totals = {n: comparison.totals(n) for n in names}
    for status in STATUSES:
        if any(totals[n][status] for n in names):
            lines.append(f"| {SYMBOLS[status]} | " + " | ".join(str(totals[n][status]) for n in names) + " |")
    lines.append("")

    def table(rows: list[Row]) -> list[str]:
        out = ["| area | statement | scenario | " + " | ".join(names) + " |", "| --- | --- | --- |" + " --- |" * len(names)]
        for row in rows:
            cells = [_md_cell(row.cells.get(n, Cell("not run"))) for n in names]
            out.append(f"| {_md(row.area)} | {_md(row.statement)} | `{_md(row.key)}` | " + " | ".join(cells) + " |")
        return out

    differing = [r for r in comparison.rows if not r.uniform or any(c.status != "pass" for c in r.cells.values())]
    lines += [f"### Differences and failures ({len(differing)} of {len(comparison.rows)} scenarios)", ""]
    lines += table(differing) if differing else ["Every scenario has the same verdict on every target, and all passed."]
    lines.append("")
    reasons = []
    for name in names:
        for row in comparison.rows:
            cell = row.cells.get(name)
            if cell is not None and cell.status in ("fail", "error", "stale", "deviation", "intermittent"):
                reasons.append(f"- **{_md(name)}** {SYMBOLS[cell.status]} `{_md(row.key)}`: {_md(cell.reason)[:300]}")
    if reasons:
        lines += ["### Why", ""] + reasons + [""]
    full = ["<details><summary>All scenarios</summary>", ""] + table(comparison.rows) + ["", "</details>", ""]
    text = "\n".join(lines)
    if limit is None or len(text) + len("\n".join(full)) <= limit:
        text += "\n" + "\n".join(full)
    elif len(text) > limit:
        text = text[: limit - 80].rsplit("\n", 1)[0] + "\n\n… cut to fit a comment: see comparison.html\n"
    return text


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330}
h1{font-size:1.4em} table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #d0d4dc;padding:.3em .6em;vertical-align:top;text-align:left}
thead th{position:sticky;top:0;background:#eef1f6}
tr.area th{background:#dfe5ef;font-size:1.05em} tr.statement th{background:#f5f7fa;font-weight:normal}
td.pass{background:#e3f5e6} td.fail{background:#fbe0e0} td.error{background:#fdf0d5}
td.deviation{background:#e6ecfb} td.intermittent{background:#efe6fb} td.stale{background:#f9d2ef} td.skipped{background:#f2f2f2;color:#555}
td.not-run{color:#999} td .why{display:block;font-size:.85em;color:#444;max-width:36em;word-break:break-word}
code{font-size:.9em} .totals td{text-align:right}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_html(comparison: Comparison) -> str:
    names = [t.name for t in comparison.targets]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>MQTT conformance: {_e(' vs '.join(names))}</title><style>{_CSS}</style></head><body>",
           f"<h1>MQTT conformance: {_e(' vs '.join(names))}</h1>",
           '<table class="totals" id="totals"><thead><tr><th></th>' + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr></thead><tbody>",
           "<tr><th>version</th>" + "".join(f"<td>{_e(t.version or 'not reported')}</td>" for t in comparison.targets) + "</tr>",
           "<tr><th>profile</th>" + "".join(f"<td>{_e(t.profile)}</td>" for t in comparison.targets) + "</tr>",
           "<tr><th>where</th>" + "".join(f"<td>{_e(t.where)}</td>" for t in comparison.targets) + "</tr>"]
    for status in STATUSES:
        counts = [comparison.totals(n)[status] for n in names]
        if any(counts):
            out.append(f'<tr data-status="{_e(status)}"><th>{_e(status)}</th>'
                       + "".join(f'<td data-target="{_e(n)}">{c}</td>' for n, c in zip(names, counts, strict=True)) + "</tr>")
    out.append("</tbody></table>")
    out.append('<table id="matrix"><thead><tr><th>scenario</th>' + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr></thead><tbody>")
    area = statement = None
    span = len(names) + 1
    for row in comparison.rows:
        if row.area != area:
            area, statement = row.area, None
            out.append(f'<tr class="area"><th colspan="{span}">{_e(area)}</th></tr>')
        if row.statement != statement:
            statement = row.statement
            paraphrase = _paraphrase(row)
            out.append(f'<tr class="statement"><th colspan="{span}"><b>{_e(statement)}</b>'
                       + (f" — {_e(paraphrase)}" if paraphrase else "") + "</th></tr>")
        cells = []
        for name in names:
            cell = row.cells.get(name, Cell("not run"))
            why = f'<span class="why">{_e(cell.reason or cell.branch)}</span>' if cell.reason or cell.branch else ""
            cells.append(f'<td class="{cell.status.replace(" ", "-")}" data-target="{_e(name)}" data-status="{_e(cell.status)}">'
                         f"{_e(cell.status)}{why}</td>")
        out.append(f'<tr class="scenario" data-scenario="{_e(row.key)}"><td>{_e(row.title)}<br><code>{_e(row.key)}</code></td>'
                   + "".join(cells) + "</tr>")
    out += ["</tbody></table>", "</body></html>"]
    return "\n".join(out)


def write(comparison: Comparison, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    html_path, md_path = directory / "comparison.html", directory / "comparison.md"
    html_path.write_text(render_html(comparison), encoding="utf-8")
    md_path.write_text(markdown(comparison), encoding="utf-8")
    return html_path, md_path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="run directories (each with results.json), or their parent")
    parser.add_argument("-o", "--output", type=Path, help="where to write comparison.html/.md (default: the common parent, or reports/)")
    parser.add_argument("--run", metavar="TARGET,...", help="first run the conformance suite against each target (named in "
                        "targets.yaml) into RESULTS/<target>/; RESULTS must then be one directory")
    parser.add_argument("-n", "--workers", default="0",
                        help="pytest-xdist workers for --run (default 0: one process, its scenarios in flight at once)")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help="with --run: how many targets' runs at once (default 1); a broker that is slow only "
                        "because it waits, run beside the others, shortens the whole")
    parser.add_argument("--scenarios", metavar="PATH", help="what --run runs (default: what a plain pytest here runs: "
                        "the folder's scenarios/, else the built-in suite)")
    parser.add_argument("--transport", metavar="NAME[,NAME]", help="passed to each --run: the endpoints to cover "
                        "(all: every endpoint each broker has; rows then name their endpoint, ...::id[tls])")
    parser.add_argument("--snapshot", type=Path, metavar="FILE", help="also write the whole comparison, dated, to FILE "
                        "(docs/vendor-comparison.md)")
    parser.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if the verdicts differ from the snapshot FILE")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: at least 1 run at a time, not {args.jobs}")
    status = 0
    if args.run:
        if len(args.results) != 1:
            parser.error("--run writes into one results directory: give exactly one")
        from harness.report.snapshot import run_targets

        targets = [t.strip() for t in args.run.split(",") if t.strip()]
        status = run_targets(targets, args.results[0], args.workers, args.scenarios, args.transport, args.jobs)
        args.results = [args.results[0] / t for t in targets]
    comparison = load(args.results)
    output = args.output or _default_output(args.results)
    html_path, md_path = write(comparison, output)
    print(f"{html_path}\n{md_path}")
    if len(comparison.targets) < 2:
        print("harness compare: only one target; the comparison has a single column", file=sys.stderr)
    if args.snapshot or args.check:
        from harness.report.snapshot import check_snapshot, write_snapshot

        if args.snapshot:
            print(write_snapshot(comparison, args.snapshot))
        if args.check and not check_snapshot(comparison, args.check):
            status = status or 1
    return status


def _default_output(directories: list[Path]) -> Path:
    if len(directories) == 1 and not (directories[0] / "results.json").is_file():
        return directories[0]  # harness compare reports -> reports/comparison.*
    parents = {d.resolve().parent for d in directories}
    return parents.pop() if len(parents) == 1 else Path("reports")
