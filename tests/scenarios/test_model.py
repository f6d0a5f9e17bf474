"""Loading scenario files: what a good file becomes, and the one-line error a bad file gets."""

import textwrap
from pathlib import Path

import pytest

from harness.errors import ScenarioFileError
from harness.scenarios.model import load_scenarios
from harness.wire import Version

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return load_scenarios(path, "s.yaml")


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioFileError) as caught:
        _load(tmp_path, text)
    return str(caught.value)


GOOD = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: one
    title: t
    refs: [MQTT-3.1.4-4]
    steps:
      - connected: {on: sub, keep_alive: 10}
      - send: {on: sub, packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: a, qos: 1}]}
      - expect: {on: sub, packet: suback, reason_codes: [1], save: {granted: reason_codes}}
      - expect_nothing: sub
      - close: {on: sub, abort: true}
"""


def test_a_good_file_becomes_typed_scenarios(tmp_path):
    (scenario,) = _load(tmp_path, GOOD)
    assert scenario.protocol is Version.V311 and scenario.area == "connect" and scenario.refs == ("MQTT-3.1.4-4",)
    assert [(s.kind, s.on, s.line) for s in scenario.steps] == [
        ("connected", "sub", 7), ("send", "sub", 8), ("expect", "sub", 9), ("expect_nothing", "sub", 10), ("close", "sub", 11)
    ]
    assert scenario.steps[0].args == {"keep_alive": 10}
    assert scenario.connections == ("sub",)
    assert not scenario.uses_timer


def test_on_yes_no_stay_strings(tmp_path):
    (scenario,) = _load(tmp_path, GOOD.replace("keep_alive: 10", "client_id: no"))
    assert scenario.steps[0].args == {"client_id": "no"}


def test_unknown_step_kind_names_its_line(tmp_path):
    message = _error(tmp_path, GOOD.replace("- expect_nothing: sub", "- expect_nothin: sub"))
    assert message.startswith("s.yaml:10: scenarios/0/steps/3:") and "expect_nothin" in message


def test_unknown_packet_field_names_its_line(tmp_path):
    message = _error(tmp_path, GOOD.replace("packet_id: 1,", "packet_idd: 1,"))
    assert message.startswith("s.yaml:8: send: SUBSCRIBE has no field 'packet_idd'")


def test_unknown_packet_type(tmp_path):
    assert "unknown packet type 'subscrib'" in _error(tmp_path, GOOD.replace("packet: subscribe", "packet: subscrib"))


def test_a_ref_that_is_not_a_statement_of_the_version(tmp_path):
    message = _error(tmp_path, GOOD.replace("MQTT-3.1.4-4", "MQTT-3.1.4-99"))
    assert message == "s.yaml:5: scenario 'one': MQTT-3.1.4-99 is not a statement of MQTT 3.1.1"
    # MQTT-2.3.1-1 exists in 3.1.1 only; 5.0 renumbered chapter 2.
    five = GOOD.replace('protocol: "3.1.1"', 'protocol: "5.0"').replace("MQTT-3.1.4-4", "MQTT-2.3.1-1")
    assert "MQTT-2.3.1-1 is not a statement of MQTT 5.0" in _error(tmp_path, five)


def test_duplicate_ids_and_missing_protocol(tmp_path):
    doubled = GOOD + textwrap.indent(textwrap.dedent(GOOD).split("scenarios:\n", 1)[1], "")
    assert "duplicate scenario id 'one' (first at line 3)" in _error(tmp_path, doubled)
    assert "no protocol" in _error(tmp_path, GOOD.replace('defaults: {protocol: "3.1.1", area: connect}', "defaults: {area: connect}"))


def test_yaml_syntax_error_has_a_line(tmp_path):
    assert _error(tmp_path, "scenarios:\n  - id: [x\n").startswith("s.yaml:3: YAML syntax")


def test_duplicate_key_is_an_error(tmp_path):
    assert "duplicate key 'title'" in _error(tmp_path, GOOD.replace("    title: t\n", "    title: t\n    title: u\n"))


def test_timer_scenarios_are_recognised(tmp_path):
    (scenario,) = _load(tmp_path, GOOD.replace("- expect_nothing: sub", "- expect_close: {on: sub, keepalive: 1}"))
    assert scenario.uses_timer


def test_every_scenario_file_in_the_repository_loads():
    files = sorted((ROOT / "scenarios").rglob("*.yaml"))
    assert files
    for path in files:
        assert load_scenarios(path), path
