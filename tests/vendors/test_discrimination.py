"""The deviation scenarios discriminate (VENDORS.md criterion 3): each scenario that checks a platform's
deviation from the spec passes against the reference broker with that platform's personality and
fails against the strict personality, so it really tells the platform's behaviour apart.

The scenarios run directly (ScenarioRunner), bypassing the profile's `requires`, which would
otherwise skip them on a strict target. The `by_profile` value used is the platform's.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import ScenarioFileError
from harness.launch import launch
from harness.launch.base import RunningBroker
from harness.scenarios.model import Scenario, load_scenarios
from harness.scenarios.runner import Endpoint, ScenarioFailed, ScenarioRunner
from harness.spec import vendors
from harness.targets.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = sorted({b.platform for b in vendors.behaviours().values()} & {p.stem for p in (ROOT / "harness/profiles").glob("*.yaml")})

# Vendor scenarios that check behaviour the spec shares (no deviation), so strict passes them too.
SPEC_BEHAVIOUR = {
    "c8y-will-connection-event": "a will on s/us is a plain MQTT will",
    "it-clientid-23-characters-and-takeover": "23 characters and takeover are the spec's own (MQTT-3.1.4-2)",
    "c8yl-persistent-session-keeps-missed-messages": "clean session 0 is the spec's own (MQTT-3.1.2-4)",
    "cp-will-published-on-loss": "a last will is plain MQTT",
    "it-consumer-publish-acknowledged-and-dropped": "ack-and-drop is the spec's own answer (MQTT-3.3.5-2)",
    "it-jwt-password-accepted": "a valid credential is accepted anywhere; IT-JWT discriminates by refusing bad tokens",
}


def deviation_scenarios(platform: str) -> list[Scenario]:
    """The platform's own scenarios, and generic ones citing one of its ids (their by_profile)."""
    found = []
    for path in sorted((ROOT / "scenarios").rglob("*.yaml")):
        try:
            loaded = load_scenarios(path)
        except ScenarioFileError:
            if path.is_relative_to(ROOT / "scenarios" / "vendors"):
                raise
            continue  # another area's file being edited; the scenario collection reports it
        for scenario in loaded:
            own = path.is_relative_to(ROOT / "scenarios" / "vendors" / platform)
            cites = any((b := vendors.lookup(ref)) is not None and b.platform == platform for ref in scenario.refs)
            if (own or cites) and scenario.id not in SPEC_BEHAVIOUR:
                found.append(scenario)
    return found


CASES = [(platform, s) for platform in PLATFORMS for s in deviation_scenarios(platform)]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningBroker]]:
    started: dict[str, RunningBroker] = {}
    try:
        for personality in ["strict", *(load_profile(p).personality for p in PLATFORMS)]:
            started[personality] = launch("reference", tmp_path_factory.mktemp(personality), personality=personality,
                                          personality_options=load_profile(_profile_of(personality)).settings)
        yield started
    finally:
        for broker in started.values():
            broker.stop()


def _profile_of(personality: str) -> str:
    return next((p for p in PLATFORMS if load_profile(p).personality == personality), "strict")


def _run(broker: RunningBroker, scenario: Scenario, profile: str) -> None:
    endpoint = Endpoint(host=broker.host, port=broker.port, accounts=broker.accounts, profile=profile,
                        settings=load_profile(profile).settings)
    ScenarioRunner(scenario, endpoint, f"disc{abs(hash(scenario.id)) % 10**8}", timeout=2.0).run()


def test_every_platform_with_a_profile_has_deviation_scenarios() -> None:
    for platform in PLATFORMS:
        assert deviation_scenarios(platform), f"{platform}: no deviation scenario"


@pytest.mark.parametrize("platform, scenario", CASES, ids=[f"{p}:{s.id}" for p, s in CASES])
def test_passes_with_the_platform_personality(brokers: dict[str, RunningBroker], platform: str, scenario: Scenario) -> None:
    _run(brokers[load_profile(platform).personality], scenario, platform)


@pytest.mark.parametrize("platform, scenario", CASES, ids=[f"{p}:{s.id}" for p, s in CASES])
def test_fails_with_the_strict_personality(brokers: dict[str, RunningBroker], platform: str, scenario: Scenario) -> None:
    with pytest.raises(ScenarioFailed):
        _run(brokers["strict"], scenario, platform)
