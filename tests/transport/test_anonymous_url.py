"""The whole conformance suite through `--broker URL` with no user info, against a real anonymous
mosquitto (`allow_anonymous true`, no accounts): what a new user points the harness at first.

Each run is the README's command in a subprocess, read back from its results.json: most scenarios
pass, none is a setup error, the ones needing credentials are skipped with the reason, and what
fails is a deviation mosquitto's baseline documents or a timer scenario (a URL target has the
strict profile's 1 s Keep Alive grace, not the 6 s of the `mosquitto` target's 5 s sweep)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import suite
from harness.launch import RunningBroker
from harness.report.categories import SETUP, categorise
from harness.scenarios.model import load_scenarios

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600  # a run takes 30-70 s here; a hang must fail the test, not the CI job
ENOUGH_PASSED = 300  # of the 354 scenarios a 3.1/3.1.1/5.0 broker without accounts can run


@pytest.fixture(scope="module")
def anonymous_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> RunningBroker:
    from harness.launch import launch

    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = launch("mosquitto", tmp_path_factory.mktemp("anonymous"), anonymous=True, transports=("tcp", "tls", "wss"))
    yield broker
    broker.stop()


def _run_suite(url: str, report_dir: Path, *options: str) -> dict[str, dict[str, str]]:
    # The outer run's pytest/xdist variables must not reach the inner run.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_"))}
    command = [sys.executable, "-m", "pytest", "scenarios", "--broker", url, "-q", "-p", "no:cacheprovider",
               "-p", "no:benchmark", "--report-dir", str(report_dir), *options]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    results = report_dir / "results.json"
    assert results.is_file(), f"no results (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stdout + done.stderr
    return json.loads(results.read_text(encoding="utf-8"))["results"]


def _documented_or_timed() -> set[str]:
    """Scenario ids (without variant suffix) whose failure here is expected: mosquitto's baseline, timer scenarios."""
    baseline = yaml.safe_load((suite.BASELINES / "mosquitto.yaml").read_text(encoding="utf-8"))
    ids = {nodeid.split("[", 1)[0] for section in ("expected_failures", "intermittent_failures")
           for nodeid in baseline.get(section) or {}}
    for path in (ROOT / "scenarios").rglob("*.yaml"):
        shown = path.relative_to(ROOT).as_posix()
        ids |= {f"{shown}::{s.id}" for s in load_scenarios(path, shown) if s.uses_timer}
    return ids


def _auth_scenarios() -> set[str]:
    return {f"{path.relative_to(ROOT).as_posix()}::{s.id}" for path in (ROOT / "scenarios").rglob("*.yaml")
            for s in load_scenarios(path) if "auth" in s.requires}


# One process keeps a run's scenarios in flight at once, which is the quickest here (workers each pay
# start-up and collection); the tcp run with two workers is the one with xdist.
@pytest.mark.parametrize(("endpoint", "options"), [("tcp", ()), ("tcp", ("-n", "2")), ("tls", ()), ("wss", ())],
                         ids=["mqtt", "mqtt-n2", "mqtts", "wss"])
def test_an_anonymous_url_runs_the_suite(anonymous_mosquitto: RunningBroker, tmp_path: Path, endpoint: str,
                                         options: tuple[str, ...]) -> None:
    url = anonymous_mosquitto.endpoints[endpoint].url
    assert "@" not in url
    tls = ("--tls-ca", str(anonymous_mosquitto.ca_file)) if endpoint != "tcp" else ()
    results = _run_suite(url, tmp_path / "report", *options, *tls)

    verdicts = {nodeid: r["verdict"] for nodeid, r in results.items()}
    passed = [n for n, v in verdicts.items() if v == "passed"]
    assert len(passed) >= ENOUGH_PASSED, f"only {len(passed)} passed"
    setup = [f"{n}: {r['detail'][:300]}" for n, r in results.items() if categorise(r["verdict"], r["detail"]) == SETUP]
    assert not setup, "setup errors:\n" + "\n".join(setup)
    expected = _documented_or_timed()
    unexplained = [f"{n}: {results[n]['detail'][:300]}" for n, v in verdicts.items()
                   if v == "failed" and n.split("[", 1)[0] not in expected]
    assert not unexplained, "failures that are neither mosquitto's documented deviations nor timers:\n" + "\n".join(unexplained)

    needing_auth = _auth_scenarios()
    skipped = {n: r for n, r in results.items() if n.split("[", 1)[0] in needing_auth}
    assert {n.split("[", 1)[0] for n in skipped} == needing_auth
    for nodeid, result in skipped.items():
        assert result["verdict"] == "skipped", nodeid
        assert "does not offer: " in result["detail"] and "auth" in result["detail"], nodeid
        assert "(its default account is anonymous: the URL has no user info" in result["detail"], nodeid
