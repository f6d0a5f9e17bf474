"""Scenarios in flight at once (--concurrency) end to end, against the launched reference broker: pytest's
order, -x, durations and Allure stay as they were; alone scenarios overlap nothing, across xdist workers too.

When a scenario ran is read from its Allure steps, which carry the times the runner recorded."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TIMED = """
defaults: {protocol: "3.1.1", area: session}
scenarios:
  - id: first-wait
    title: waits one second
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - wait: {seconds: 1, why: to be in flight beside the others}
      - expect_nothing:
  - id: second-wait
    title: waits one second too
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - wait: {seconds: 1, why: to be in flight beside the others}
      - expect_nothing:
  - id: broad
    title: subscribes to everything
    refs: [MQTT-3.8.4-1]
    steps:
      - connected:
      - send: {packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: "#", qos: 0}]}
      - expect: {packet: suback}
      - wait: {seconds: 0.5, why: to show nothing else runs meanwhile}
  - id: quick
    title: connects
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
"""

FAILING_FIRST = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: a-fails
    title: expects a refusal the broker does not give
    refs: [MQTT-3.2.2-5]
    steps:
      - connect:
      - expect: {packet: connack, reason_code: 5}
""" + "".join(f"""
  - id: later-{n}
    title: connects
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
""" for n in range(5))


def _write(pytester: pytest.Pytester, text: str) -> None:
    path = pytester.path / "scenarios" / "s.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def _intervals(results: Path) -> dict[str, tuple[int, int]]:
    """Scenario id -> (first step start, last step stop), in ms, from the Allure results."""
    found = {}
    for path in results.glob("*-result.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        steps = [s for s in data.get("steps", []) if s.get("start")]
        found[data["fullName"].rsplit("::", 1)[-1].split("#")[-1]] = (min(s["start"] for s in steps),
                                                                       max(s["stop"] for s in steps))
    return found


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_scenarios_overlap_but_report_in_order_with_their_own_durations(pytester: pytest.Pytester) -> None:
    _write(pytester, TIMED)
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", "--alluredir", "allure",
                                           "--junitxml", "junit.xml")
    assert result.ret == 0, result.stdout.str()
    reported = [line.split("::")[1].split()[0] for line in result.stdout.lines if "::" in line and "PASSED" in line]
    assert reported == ["first-wait", "second-wait", "broad", "quick"]
    times = _intervals(pytester.path / "allure")
    assert set(times) == {"first-wait", "second-wait", "broad", "quick"}, times
    assert _overlap(times["first-wait"], times["second-wait"])
    assert not any(_overlap(times["broad"], times[other]) for other in ("first-wait", "second-wait", "quick"))
    # JUnit carries each scenario's own time: second-wait's test found its result ready, yet took its second.
    junit = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    second = junit.split('name="second-wait"')[1].split(">")[0]
    assert float(second.split('time="')[1].split('"')[0]) >= 0.9


def test_concurrency_one_runs_them_one_after_another(pytester: pytest.Pytester) -> None:
    _write(pytester, TIMED)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--alluredir", "allure", "--concurrency", "1")
    assert result.ret == 0, result.stdout.str()
    times = sorted(_intervals(pytester.path / "allure").values())
    assert all(not _overlap(a, b) for a, b in zip(times, times[1:], strict=False))


def test_an_alone_scenario_overlaps_nothing_across_xdist_workers(pytester: pytest.Pytester) -> None:
    _write(pytester, TIMED)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--alluredir", "allure", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    times = _intervals(pytester.path / "allure")
    assert not any(_overlap(times["broad"], times[other]) for other in ("first-wait", "second-wait", "quick"))


# A launched target whose profile runs every scenario alone, and a conftest that writes down, per
# worker, the port of the broker it ran against.
ONE_AT_A_TIME_PROFILE = """
name: one-at-a-time
description: a broker that takes one scenario at a time
protocols: ["3.1.1"]
capabilities: {will: true, retain: true, qos1: true, qos2: true, persistent_session: true, several_in_flight: true}
settings: {keepalive_grace: 1.0}
run_alone:
  every scenario: it loses messages while other clients come and go
"""
BROKER_PORT_CONFTEST = """
import os
from pathlib import Path

from harness.plugin import SESSION_KEY


def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        Path(f"broker-of-{worker}").write_text(str(session.config.stash[SESSION_KEY].endpoint().port))
"""


def _one_at_a_time_target(pytester: pytest.Pytester) -> None:
    _write(pytester, TIMED)
    (pytester.path / "profiles").mkdir()
    (pytester.path / "profiles" / "one-at-a-time.yaml").write_text(ONE_AT_A_TIME_PROFILE, encoding="utf-8")
    (pytester.path / "targets.yaml").write_text(
        "targets:\n  single:\n    launch: reference\n    profile: one-at-a-time\n", encoding="utf-8")
    (pytester.path / "conftest.py").write_text(BROKER_PORT_CONFTEST, encoding="utf-8")


def _broker_ports(pytester: pytest.Pytester) -> dict[str, int]:
    return {path.name.removeprefix("broker-of-"): int(path.read_text()) for path in pytester.path.glob("broker-of-*")}


def test_every_scenario_alone_gives_each_xdist_worker_a_broker_of_its_own(pytester: pytest.Pytester) -> None:
    _one_at_a_time_target(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--alluredir", "allure", "-n", "2",
                                           "--target", "single")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*each xdist worker has a reference broker of its own*"])
    ports = _broker_ports(pytester)
    assert set(ports) == {"gw0", "gw1"} and ports["gw0"] != ports["gw1"], ports
    # Every scenario runs alone, yet two ran at once: each worker's beside the other's, on its own broker.
    times = list(_intervals(pytester.path / "allure").values())
    assert any(_overlap(a, b) for i, a in enumerate(times) for b in times[i + 1:]), times
    for port in ports.values():  # both brokers were stopped when the run ended
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_other_targets_share_one_broker_between_the_workers(pytester: pytest.Pytester) -> None:
    _one_at_a_time_target(pytester)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    assert "of its own" not in result.stdout.str()
    ports = _broker_ports(pytester)
    assert set(ports) == {"gw0", "gw1"} and ports["gw0"] == ports["gw1"], ports


def test_x_stops_at_the_first_failure_in_order(pytester: pytest.Pytester) -> None:
    _write(pytester, FAILING_FIRST)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-x")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*1 failed*"])
    assert "passed" not in result.stdout.lines[-1]


def test_a_bad_concurrency_is_one_line(pytester: pytest.Pytester) -> None:
    _write(pytester, FAILING_FIRST)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--concurrency", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--concurrency: expected 1 or more scenarios in flight, got 0*"])
    assert "Traceback" not in result.stderr.str()


def test_alone_scenarios_carry_a_marker(pytester: pytest.Pytester) -> None:
    _write(pytester, TIMED)
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider", "-m", "alone")
    assert [line for line in result.stdout.lines if "::" in line] == ["scenarios/s.yaml::broad"]
