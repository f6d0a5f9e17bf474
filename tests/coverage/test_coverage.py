"""Traceability: every broker-binding statement is checked by a scenario or excluded with a reason."""

import json
import textwrap
from pathlib import Path

import pytest

from harness import coverage, suite
from harness.coverage import CoverageFileError, compute, load_all_scenarios, load_coverage_file, unknown_refs
from harness.wire import Version

ROOT = suite.ROOT  # the built-in suite: scenarios/ and coverage/
VERSIONS_WITH_FILES = [v for v in Version if coverage.coverage_path(ROOT, v).is_file()]


@pytest.fixture(scope="module")
def scenarios():
    return load_all_scenarios(ROOT)


# -- the repository ------------------------------------------------------------------------------

def test_311_and_31_have_coverage_files():
    assert {Version.V311, Version.V31} <= set(VERSIONS_WITH_FILES)


def test_every_scenario_cites_only_statements_of_its_version(scenarios):
    assert unknown_refs(scenarios, ROOT) == []


@pytest.mark.parametrize("version", VERSIONS_WITH_FILES, ids=lambda v: v.label)
def test_every_broker_binding_statement_is_covered_or_excluded(scenarios, version):
    result = compute(version, scenarios, ROOT)
    assert result.problems() == []
    binding = result.binding
    assert binding and all(row.status in ("covered", "excluded", "pending") for row in binding)


def test_mqtt311_numbers(scenarios):
    result = compute(Version.V311, scenarios, ROOT)
    assert len(result.binding) == 114
    left_out = [row for row in result.binding if row.status != "covered"]
    assert len(left_out) <= 5, "exclusions are meant to be a handful: " + ", ".join(r.statement.id for r in left_out)
    assert all(len(row.entry[1]) >= 40 for row in left_out), "every exclusion says why"


# -- the mechanism, on a scratch repository ------------------------------------------------------

SCENARIO = """
defaults: {protocol: "3.1.1", area: keepalive}
scenarios:
  - id: ping
    title: PINGREQ gets PINGRESP
    refs: [MQTT-3.12.4-1, MQTT-3.1.2-23]
    steps:
      - connected:
      - send: {packet: pingreq}
      - expect: {packet: pingresp}
  - id: ping-31
    title: A 3.1 scenario citing a 3.1.1 id does not cover the 3.1.1 statement
    protocol: "3.1"
    refs: [MQTT-3.1.0-2]
    steps:
      - connected:
"""


def _repo(tmp_path: Path, coverage_text: str | None = None) -> Path:
    (tmp_path / "scenarios" / "mqtt311").mkdir(parents=True)
    (tmp_path / "scenarios" / "mqtt311" / "ping.yaml").write_text(textwrap.dedent(SCENARIO), encoding="utf-8")
    if coverage_text is not None:
        (tmp_path / "coverage").mkdir()
        (tmp_path / "coverage" / "mqtt-3.1.1.yaml").write_text(textwrap.dedent(coverage_text), encoding="utf-8")
    return tmp_path


def _row(result, statement_id):
    return next(row for row in result.rows if row.statement.id == statement_id)


def test_refs_become_covered_statements_of_the_same_version_only(tmp_path):
    root = _repo(tmp_path)
    result = compute(Version.V311, load_all_scenarios(root), root)
    assert [ref.nodeid for ref in _row(result, "MQTT-3.12.4-1").scenarios] == ["scenarios/mqtt311/ping.yaml::ping"]
    assert _row(result, "MQTT-3.12.4-1").status == "covered"
    assert _row(result, "MQTT-3.1.0-2").status == "missing"  # only a 3.1 scenario cites it
    assert _row(result, "MQTT-3.1.2-23").status == "covered"  # a client statement may be cited too
    assert _row(result, "MQTT-2.3.1-2").status == "n/a"  # client-only, not cited: nothing demanded


def test_a_missing_statement_and_a_stale_or_pointless_entry_are_problems(tmp_path):
    root = _repo(tmp_path, """
        protocol: "3.1.1"
        excluded:
          MQTT-3.12.4-1: a scenario checks it, so this entry is stale and must go
          MQTT-2.3.1-2: client-only statements need no entry at all, this is pointless
        pending:
          MQTT-6.0.0-1: needs WebSocket
    """)
    result = compute(Version.V311, load_all_scenarios(root), root)
    problems = "\n".join(result.problems())
    assert "MQTT-3.12.4-1 is excluded" in problems and "remove the entry" in problems
    assert "MQTT-2.3.1-2 is excluded" in problems and "does not bind the broker" in problems
    assert "MQTT-3.1.0-2 (3.1 CONNECT) binds the broker" in problems
    assert "MQTT-6.0.0-1" not in problems
    assert _row(result, "MQTT-6.0.0-1").status == "pending"


@pytest.mark.parametrize("text, message", [
    ("excluded: {MQTT-9.9.9-9: nowhere}", "is not a statement of MQTT 3.1.1"),
    ("excluded: {MQTT-6.0.0-1: a}\npending: {MQTT-6.0.0-1: b}", "listed twice"),
    ("excluded: {MQTT-6.0.0-1: ''}", "give the reason"),
    ("protocol: '5.0'", "not 3.1.1"),
    ("excludes: {}", "expected the keys"),
])
def test_a_bad_coverage_file_names_the_problem(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CoverageFileError, match=message):
        load_coverage_file(path, Version.V311)


def test_an_unknown_ref_is_reported_with_its_scenario(tmp_path):
    root = _repo(tmp_path)
    scenarios = load_all_scenarios(root)
    bad = scenarios[0].__class__(**{**scenarios[0].__dict__, "refs": ("MQTT-3.1.2-99",)})
    assert unknown_refs([bad], root) == ["scenarios/mqtt311/ping.yaml::ping: MQTT-3.1.2-99 is not a statement of MQTT 3.1.1"]


def test_run_verdicts_are_folded_per_statement_worst_first(tmp_path):
    root = _repo(tmp_path)
    results = {"target": "t", "results": {
        "scenarios/mqtt311/ping.yaml::ping[tcp-raw]": {"verdict": "passed"},
        "scenarios/mqtt311/ping.yaml::ping[tls-raw]": {"verdict": "xfailed"},
    }}
    result = compute(Version.V311, load_all_scenarios(root), root, results=results)
    row = _row(result, "MQTT-3.12.4-1")
    assert row.run_status == "known deviation" and row.verdicts == {"passed": 1, "xfailed": 1}
    assert _row(result, "MQTT-3.1.0-2").run_status == ""
    chapter3 = next(c for c in coverage.chapter_summary(result) if c["chapter"] == "3")
    assert chapter3["run:known deviation"] == 1
    text = coverage.summary_text(result)
    assert "verdicts of target t" in text and "known deviation" in text
    table = coverage.markdown(result)
    assert "| MQTT-3.12.4-1 |" in table and "known deviation (1 passed, 1 xfailed)" in table


def test_the_command_prints_writes_the_table_and_fails_on_missing_statements(tmp_path, capsys):
    root = _repo(tmp_path, "protocol: '3.1.1'\npending: {MQTT-6.0.0-1: needs a WebSocket listener on the target}")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"target": "t", "results": {"scenarios/mqtt311/ping.yaml::ping": {"verdict": "failed"}}}))
    status = coverage.main(["--root", str(root), "--out", str(tmp_path / "out"), "--results", str(results)])
    out, err = capsys.readouterr()
    assert status == 1
    assert "MQTT 3.1.1: statements that bind the broker, by chapter" in out
    assert "problem: MQTT-3.1.0-2" in err
    written = (tmp_path / "out" / "coverage-mqtt-3.1.1.md").read_text()
    assert "| MQTT-6.0.0-1 |" in written and "pending: needs a WebSocket listener" in written
    assert "| fail (1 failed) |" in written


def test_the_command_passes_on_this_repository(tmp_path, capsys):
    assert coverage.main(["--root", str(ROOT), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "114 of 114 broker-binding statements covered or excluded with a reason" in out
    assert (tmp_path / "coverage-mqtt-3.1.1.md").is_file() and (tmp_path / "coverage-mqtt-3.1.md").is_file()
