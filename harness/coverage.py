"""Traceability: which scenarios check which normative statement, and what a run made of them.

The scenario files are the one source of "statement -> scenarios": every scenario lists the
statements it checks in `refs`. What no scenario can check is recorded, with the reason, in a
coverage file per protocol version, `coverage/mqtt-<version>.yaml`:

    protocol: "3.1.1"
    excluded:          # no client can observe it; permanent
      MQTT-x.y.z-n: why no client can see it
    pending:           # a client could check it, the harness or the targets cannot yet
      MQTT-x.y.z-n: what is missing

A statement *binds the broker* when its actor is `server` or `both` and it is testable (`yes` or
`partial`) from the client side (harness.spec.Statement.binds_broker). For a version with a
coverage file, every such statement must be covered by a scenario of that version, excluded or
pending (`check()` lists what is not). Only scenarios of the statement's own version count: a 3.1
scenario that cites a 3.1.1 id does not check 3.1.1 behaviour.

`harness coverage` prints a per-chapter summary and writes the full table as Markdown; given a
run's `results.json` (pytest --report-dir) it adds, per statement, the verdicts of its scenarios.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import spec, suite
from harness.errors import ScenarioFileError, load_data_file
from harness.scenarios.model import Scenario, load_scenarios
from harness.wire import Version

COVERAGE_DIR = "coverage"
SCENARIO_DIR = "scenarios"
ENTRY_KINDS = ("excluded", "pending")

# Verdicts of results.json, from worst to best, and how the report names them.
# "xpassed" is an intermittent deviation that passed this time (strict ones that pass are "failed").
_VERDICT_ORDER = ("failed", "error", "xfailed", "xpassed", "passed", "skipped")
_STATUS_OF_VERDICT = {"failed": "fail", "error": "error", "xpassed": "pass", "xfailed": "known deviation",
                      "passed": "pass", "skipped": "skipped"}


class CoverageFileError(Exception):
    """A coverage file that cannot be read or names something that does not exist."""


def coverage_path(root: Path, version: Version) -> Path:
    return root / COVERAGE_DIR / f"mqtt-{version.label}.yaml"


@dataclass(frozen=True)
class ScenarioRef:
    nodeid: str  # scenarios/<file>.yaml::<id>
    title: str


@dataclass
class CoverageFile:
    version: Version
    path: Path | None
    excluded: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)

    def entry(self, statement_id: str) -> tuple[str, str] | None:
        for kind in ENTRY_KINDS:
            reasons: dict[str, str] = getattr(self, kind)
            if statement_id in reasons:
                return kind, reasons[statement_id]
        return None


def load_coverage_file(path: Path, version: Version) -> CoverageFile:
    """The exclusions and pending entries of one version; CoverageFileError for anything malformed."""
    data = load_data_file(path, str(path), CoverageFileError)
    if not isinstance(data, Mapping) or not set(data) <= {"protocol", "description", *ENTRY_KINDS}:
        raise CoverageFileError(f"{path}: expected the keys protocol, excluded, pending (and description)")
    if "protocol" in data and Version.parse(str(data["protocol"])) is not version:
        raise CoverageFileError(f"{path}: is for MQTT {data['protocol']}, not {version.label}")
    result = CoverageFile(version, path)
    for kind in ENTRY_KINDS:
        entries = data.get(kind) or {}
        if not isinstance(entries, Mapping):
            raise CoverageFileError(f"{path}: {kind} must map statement ids to reasons")
        for statement_id, reason in entries.items():
            if not isinstance(reason, str) or not reason.strip():
                raise CoverageFileError(f"{path}: {kind}: {statement_id}: give the reason")
            if statement_id not in spec.statements(version):
                raise CoverageFileError(f"{path}: {kind}: {statement_id} is not a statement of MQTT {version.label}")
            if result.entry(statement_id):
                raise CoverageFileError(f"{path}: {statement_id} is listed twice")
            getattr(result, kind)[statement_id] = " ".join(reason.split())
    return result


def load_all_scenarios(root: Path, directory: str = SCENARIO_DIR) -> list[Scenario]:
    """Every scenario under root/<directory>, node ids relative to root; ScenarioFileError as the plugin reports it."""
    scenarios: list[Scenario] = []
    for path in sorted((root / directory).rglob("*.y*ml")):
        if path.suffix in (".yaml", ".yml"):
            scenarios += load_scenarios(path, path.relative_to(root).as_posix())
    return scenarios


def nodeid(scenario: Scenario, root: Path) -> str:
    # Not resolved first: the built-in suite's scenarios/ is a link in a clone of the repository.
    path = scenario.path.absolute()
    if not path.is_relative_to(root.absolute()):
        path, root = path.resolve(), root.resolve()
    return f"{path.relative_to(root.absolute()).as_posix()}::{scenario.id}"


@dataclass
class StatementCoverage:
    statement: spec.Statement
    scenarios: list[ScenarioRef]
    entry: tuple[str, str] | None  # (excluded | pending, reason)
    verdicts: Counter[str] = field(default_factory=Counter)  # from a run: verdict -> scenario items

    @property
    def chapter(self) -> str:
        return self.statement.id.split("-")[-2].split(".")[0] if self.statement.id.startswith("MQTT-") else self.statement.section.split(".")[0]

    @property
    def status(self) -> str:
        """covered, excluded, pending, missing (a broker-binding statement with neither) or cited / n/a."""
        if self.scenarios:
            return "covered"
        if self.entry:
            return self.entry[0]
        return "missing" if self.statement.binds_broker else "n/a"

    @property
    def run_status(self) -> str:
        """The worst verdict among its scenarios in the run: fail, error, known deviation, pass, skipped or not run."""
        for verdict in _VERDICT_ORDER:
            if self.verdicts.get(verdict):
                return _STATUS_OF_VERDICT[verdict]
        return "not run" if self.scenarios else ""


@dataclass
class Coverage:
    version: Version
    file: CoverageFile
    rows: list[StatementCoverage]
    results_target: str | None = None

    @property
    def binding(self) -> list[StatementCoverage]:
        return [row for row in self.rows if row.statement.binds_broker]

    def problems(self) -> list[str]:
        """Why the coverage is not complete and honest: missing statements, stale exclusions."""
        found = []
        for row in self.rows:
            if row.status == "missing":
                found.append(f"{row.statement.id} ({row.statement.section}) binds the broker but no MQTT "
                             f"{self.version.label} scenario cites it and it is neither excluded nor pending")
            if row.scenarios and row.entry:
                found.append(f"{row.statement.id} is {row.entry[0]} in {self.file.path} but checked by "
                             f"{', '.join(s.nodeid for s in row.scenarios)}: remove the entry")
            if row.entry and not row.statement.binds_broker:
                found.append(f"{row.statement.id} is {row.entry[0]} in {self.file.path} but does not bind the broker "
                             f"(actor {row.statement.actor}, testable {row.statement.testable}): remove the entry")
        return found


def unknown_refs(scenarios: Iterable[Scenario], root: Path) -> list[str]:
    """Protocol refs that are not statements (or rules) of the scenario's version."""
    return [f"{nodeid(s, root)}: {ref} is not a statement of MQTT {s.protocol.label}"
            for s in scenarios for ref in s.refs if spec.is_protocol_ref(ref) and spec.lookup(s.protocol, ref) is None]


def compute(version: Version, scenarios: Sequence[Scenario], root: Path, coverage_file: CoverageFile | None = None,
            results: Mapping[str, Any] | None = None) -> Coverage:
    if coverage_file is None:
        path = coverage_path(root, version)
        coverage_file = load_coverage_file(path, version) if path.is_file() else CoverageFile(version, None)
    cited: dict[str, list[ScenarioRef]] = {}
    for scenario in scenarios:
        if scenario.protocol is not version:
            continue
        for ref in scenario.refs:
            cited.setdefault(ref, []).append(ScenarioRef(nodeid(scenario, root), scenario.title))
    verdicts = _verdicts_by_scenario(results)
    rows = []
    for statement in spec.statements(version).values():
        refs = cited.get(statement.id, [])
        row = StatementCoverage(statement, refs, coverage_file.entry(statement.id))
        for ref in refs:
            row.verdicts.update(verdicts.get(ref.nodeid, Counter()))
        rows.append(row)
    target = str(results.get("target")) if results else None
    return Coverage(version, coverage_file, rows, target)


def _verdicts_by_scenario(results: Mapping[str, Any] | None) -> dict[str, Counter[str]]:
    """results.json: node id (maybe with a `[variant]` suffix) -> verdict, folded per scenario."""
    folded: dict[str, Counter[str]] = {}
    for item, result in ((results or {}).get("results") or {}).items():
        folded.setdefault(item.split("[")[0], Counter())[str(result.get("verdict", ""))] += 1
    return folded


# -- output ------------------------------------------------------------------------------------

def chapter_summary(coverage: Coverage) -> list[dict[str, Any]]:
    """Per chapter: statements, broker-binding, covered, excluded, pending, missing; with a run, the verdicts."""
    chapters: dict[str, dict[str, Any]] = {}
    for row in coverage.rows:
        entry = chapters.setdefault(row.chapter, Counter())
        entry["statements"] += 1
        if row.statement.binds_broker:
            entry["binding"] += 1
            entry[row.status] += 1
            if coverage.results_target is not None and row.status == "covered":
                entry["run:" + row.run_status] += 1
        elif row.scenarios:
            entry["cited, not binding"] += 1
    return [{"chapter": name, **counts} for name, counts in sorted(chapters.items(), key=lambda item: int(item[0]))]


_RUN_COLUMNS = ("pass", "fail", "error", "known deviation", "skipped", "not run")


def summary_text(coverage: Coverage) -> str:
    label = coverage.version.label
    summary = chapter_summary(coverage)
    head = ["chapter", "statements", "binding", "covered", "excluded", "pending", "missing"]
    run_cols = list(_RUN_COLUMNS) if coverage.results_target is not None else []
    rows = [[str(c["chapter"]), *(str(c.get(k, 0)) for k in ("statements", "binding", "covered", "excluded", "pending", "missing")),
             *(str(c.get("run:" + k, 0)) for k in run_cols)] for c in summary]
    totals = ["total", *(str(sum(c.get(k, 0) for c in summary)) for k in ("statements", "binding", "covered", "excluded", "pending", "missing")),
              *(str(sum(c.get("run:" + k, 0) for c in summary)) for k in run_cols)]
    table = [head + run_cols, *rows, totals]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [f"MQTT {label}: statements that bind the broker, by chapter"
             + (f"; verdicts of target {coverage.results_target} per covered statement" if run_cols else "")]
    for index, row in enumerate(table):
        lines.append("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths, strict=True))))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    binding = coverage.binding
    accounted = sum(1 for row in binding if row.status in ("covered", "excluded", "pending"))
    lines.append(f"{accounted} of {len(binding)} broker-binding statements covered or excluded with a reason "
                 f"({sum(1 for r in binding if r.status == 'covered')} covered, "
                 f"{sum(1 for r in binding if r.status == 'excluded')} excluded, {sum(1 for r in binding if r.status == 'pending')} pending)")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(coverage: Coverage) -> str:
    label = coverage.version.label
    run = coverage.results_target is not None
    lines = [f"# MQTT {label}: statements and the scenarios that check them", ""]
    lines.append("Generated by `harness coverage` from the scenario files' `refs`"
                 + (f" and `{coverage.file.path.name}`" if coverage.file.path else "")
                 + (f", with the verdicts of a run against target `{coverage.results_target}`." if run else "."))
    lines += ["", "```", summary_text(coverage), "```", ""]
    head = "| statement | section | actor | testable | paraphrase | status | scenarios |" + (" verdict |" if run else "")
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for row in coverage.rows:
        st = row.statement
        if row.scenarios:
            where = "<br>".join(f"`{ref.nodeid}`" for ref in row.scenarios)
        elif row.entry:
            where = f"{row.entry[0]}: {row.entry[1]}"
        else:
            where = ""
        status = row.status if st.binds_broker or row.scenarios or row.entry else "not broker-binding"
        verdict = ""
        if run and row.scenarios:
            counts = ", ".join(f"{n} {v}" for v, n in sorted(row.verdicts.items()))
            verdict = f"{row.run_status}" + (f" ({counts})" if counts else "")
        lines.append(f"| {st.id} | {_cell(st.section)} | {st.actor} | {st.testable} | {_cell(st.paraphrase)} | {status} | "
                     f"{_cell(where)} |" + (f" {verdict} |" if run else ""))
    return "\n".join(lines) + "\n"


# -- command line ------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness coverage", description=(
        "Statements per chapter covered by scenarios, excluded or pending; with --results, the run's verdicts. "
        "Writes the full table to OUT/coverage-mqtt-<version>.md. Exit status 1 when a broker-binding "
        "statement is neither covered nor excluded, or an exclusion is stale."))
    parser.add_argument("--protocol", action="append", metavar="VERSION",
                        help="3.1, 3.1.1 or 5.0 (repeatable; default: every version with a coverage file)")
    parser.add_argument("--results", metavar="PATH", type=Path,
                        help="a run's results.json (pytest --report-dir DIR writes DIR/results.json)")
    parser.add_argument("--out", metavar="DIR", type=Path, default=Path("reports"), help="where the Markdown goes (default: reports)")
    parser.add_argument("--root", metavar="DIR", type=Path, default=suite.ROOT,
                        help="a folder holding scenarios/ and coverage/ (default: the built-in suite, harness/suite)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    root: Path = args.root
    if args.protocol:
        versions = [Version.parse(v) for v in args.protocol]
    else:
        versions = [v for v in Version if coverage_path(root, v).is_file()] or [Version.V311]
    try:
        scenarios = load_all_scenarios(root)
        results = json.loads(args.results.read_text(encoding="utf-8")) if args.results else None
        reports = [compute(v, scenarios, root, results=results) for v in versions]
    except (ScenarioFileError, CoverageFileError, OSError, ValueError) as exc:
        print(f"harness coverage: {exc}", file=sys.stderr)
        return 2
    failed = False
    problems = unknown_refs(scenarios, root)
    args.out.mkdir(parents=True, exist_ok=True)
    for coverage in reports:
        path = args.out / f"coverage-mqtt-{coverage.version.label}.md"
        path.write_text(markdown(coverage), encoding="utf-8")
        print(summary_text(coverage))
        print(f"full table: {path}\n")
        if coverage.file.path is not None:  # completeness is demanded where a coverage file says what is left out
            problems += coverage.problems()
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
