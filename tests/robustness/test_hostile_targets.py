"""A dead or hostile broker never earns a pass, and a broker that is down is said once.

Each fake broker of hostile_broker.py, run against the built-in 3.1.1 CONNECT and 5.0 PUBLISH
scenarios (67 items) as a user would: `pytest --broker URL` from a folder of their own.

- With the preflight (the default), the run stops before the first scenario, within its bound,
  with one line naming the target and what it saw, and exit code 6; no scenario is reported.
- With `--no-preflight`, the scenarios run, and none of them passes: a scenario whose checks held
  only because the broker closed, refused or stayed silent is an error saying the target was not
  alive right after it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_broker import BEHAVIOURS, HostileBroker, free_port

from harness import suite
from harness.preflight import PREFLIGHT_FAILED
from harness.scenarios.model import Scenario, load_scenarios

SUITE = ["scenarios/mqtt311/connect.yaml", "scenarios/mqtt5/publish.yaml"]
RUN_TIMEOUT_S = 300

# behaviour -> what the preflight line must say it saw
SEEN = {
    # The reset may come before connect() returns when the machine is busy: the same broker, seen earlier.
    "reset": r"reset the connection (after CONNECT instead of answering CONNACK|as it opened, before CONNECT could be sent)",
    "flood": r"sent PUBLISH topic='flood/unsolicited' .* to a client that subscribed to nothing \(30 ",
    "silent": r"no CONNACK within 5 s of CONNECT",
    "garbage": r"answered CONNECT with bytes that do not decode \(.*\): 00 ",
    "drip": r"answered CONNECT with bytes that do not decode \(packet of \d+ bytes exceeds the maximum packet size "
            r"1048576\): 20 80 80 80 60",
    "half-close": r"closed the connection after CONNECT instead of answering CONNACK",
}


def _checks_only_the_connack(scenario: Scenario) -> bool:
    """Scenarios that check a CONNACK, and at most that nothing came before a PINGRESP right after it (which
    the flooding fake, answering a PINGREQ at once, may meet before its flood)."""
    return all(step.kind in ("open", "connect", "connected", "disconnect", "close", "expect_nothing")
               or (step.kind == "expect" and step.args.get("packet") == "connack") for step in scenario.steps)


CONNACK_ONLY = {f"{path}::{s.id}" for path in SUITE for s in load_scenarios(suite.builtin_path(path))
                if _checks_only_the_connack(s)}


def _run(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", *SUITE, "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                          cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return done, time.monotonic() - started


def _outcomes(output: str) -> dict[str, int]:
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    return {kind: int(count) for count, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary)}


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
def test_the_preflight_stops_the_run_with_one_line(behaviour: str, tmp_path: Path) -> None:
    with HostileBroker(behaviour) as broker:
        done, took = _run(tmp_path, "--broker", broker.url)
    assert done.returncode == PREFLIGHT_FAILED, done.stdout + done.stderr
    assert took < 20, f"took {took:.1f} s"  # the preflight's 5 s and pytest's start-up
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "preflight:" in line]
    assert len(lines) == 1, done.stdout + done.stderr
    assert re.search(rf"preflight: target 127\.0\.0\.1:{broker.port} is not usable: mqtt://127\.0\.0\.1:{broker.port}, "
                     rf"MQTT 3\.1: {SEEN[behaviour]}", lines[0]), lines[0]
    assert not _outcomes(done.stdout), done.stdout  # no scenario reported as passed or failed
    assert "Traceback" not in done.stdout + done.stderr


def test_a_broker_that_is_not_there_is_said_once(tmp_path: Path) -> None:
    port = free_port()
    done, took = _run(tmp_path, "--broker", f"mqtt://127.0.0.1:{port}", "-n", "2")
    assert done.returncode == PREFLIGHT_FAILED and took < 20, (took, done.stdout + done.stderr)
    output = done.stdout + done.stderr
    assert output.count("Connection refused") == 1, output
    assert f"preflight: target 127.0.0.1:{port} is not usable: broker mqtt://127.0.0.1:{port} unreachable: " \
           "Connection refused" in output


@pytest.mark.parametrize("behaviour", ["reset", "flood", "half-close", "garbage"])
def test_without_the_preflight_no_scenario_passes(behaviour: str, tmp_path: Path) -> None:
    with HostileBroker(behaviour) as broker:
        done, took = _run(tmp_path, "--broker", broker.url, "--no-preflight", "-n", "2", "--mqtt-timeout", "1", "-rA")
    outcomes = _outcomes(done.stdout)
    assert done.returncode == 1 and sum(outcomes.values()) >= 60, (outcomes, done.stdout[-3000:])
    passed = set(re.findall(r"^PASSED (\S+)", done.stdout, re.MULTILINE))
    assert len(passed) == outcomes.get("passed", 0)
    # The flooding fake answers CONNECT correctly: a scenario that checks no more than its CONNACK holds.
    # Nothing else passes, whatever it expected of a close, a refusal or silence.
    allowed = CONNACK_ONLY if behaviour == "flood" else set()
    assert passed <= allowed, sorted(passed - allowed)
    assert took < 150, f"took {took:.1f} s"
    if behaviour in ("reset", "half-close"):  # scenarios about a close saw one: the liveness check refuses the pass
        assert "was not alive right after this scenario" in done.stdout, done.stdout[-3000:]


def test_a_healthy_broker_passes_the_preflight_and_the_liveness_checks(tmp_path: Path) -> None:
    """The control: the same scenarios against the launched reference broker all pass."""
    done, _ = _run(tmp_path, "-n", "2")
    outcomes = _outcomes(done.stdout)
    assert done.returncode == 0 and outcomes.get("passed", 0) >= 60 and not outcomes.get("failed"), done.stdout[-3000:]


def test_a_reset_before_connect_returns_is_named_a_reset_not_an_unreachable_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that resets every connection at once may do it before connect() returns on a busy
    machine: the line says it reset the connection, as when the reset follows the CONNECT."""
    from harness import liveness
    from harness.clients.transport import parse_address
    from harness.wire import Version

    def resetting(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(liveness, "open_transport", resetting)
    line = liveness.check_alive(parse_address("mqtt://127.0.0.1:1883"), Version.V31)
    assert line is not None and re.fullmatch(rf"mqtt://127\.0\.0\.1:1883, MQTT 3\.1: {SEEN['reset']}", line), line
