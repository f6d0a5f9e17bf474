"""The deviation scenarios discriminate (VENDORS.md criterion 3): each scenario that checks a platform's
deviation from the spec passes against the reference broker with that platform's personality and
fails against the strict personality, so it really tells the platform's behaviour apart.

The scenarios run directly (ScenarioRunner), bypassing the profile's `requires`, which would
otherwise skip them on a strict target. The `by_profile` value used is the platform's, and so are
the settings (the `reference-<platform>` target's, as targets.yaml overrides them: a shortened
CloudPlugs idle limit) and the endpoint (the platform's default: Itron's is TLS).

The strict broker knows the platforms' own accounts too (a Watson device, the Cumulocity bootstrap
user, the CloudPlugs enrolment model: `Personality.platform_accounts`), with the same credentials, so
a scenario logging in with one fails there for the behaviour it checks, not for an unknown user.
A scenario needing a capability the `reference-<platform>` target lacks (Cumulocity's two-way SSL
login, which needs the setting client_id_from_cn) runs against a platform broker with what `ENABLE`
turns on, and against the plain strict broker.
"""

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.broker.personalities import PERSONALITIES
from harness.errors import ScenarioFileError
from harness.launch import LAUNCHERS, STANDARD_ACCOUNTS, Account
from harness.scenarios.model import Scenario, load_scenarios
from harness.scenarios.runner import ScenarioFailed, ScenarioRunner
from harness.spec import vendors
from harness.targets import TargetSession, TargetSpec, load_targets
from harness.targets.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = sorted({b.platform for b in vendors.behaviours().values()} & {p.stem for p in (ROOT / "harness/profiles").glob("*.yaml")})

# Vendor scenarios that check behaviour the spec shares (no deviation), so strict passes them too.
SPEC_BEHAVIOUR = {
    "c8y-tls-device-session": "MQTT over TLS is the spec's own transport (C8Y-TRANSPORTS: the platform offers it)",
    "c8y-websocket-on-path-mqtt": "MQTT over WebSocket is the spec's own (MQTT-6.0.0-4; C8Y-TRANSPORTS: the platform offers it)",
    "it-clientid-23-characters-and-takeover": "23 characters and takeover are the spec's own (MQTT-3.1.4-2)",
    "c8yl-persistent-session-keeps-missed-messages": "clean session 0 is the spec's own (MQTT-3.1.2-4)",
    "cp-will-published-on-loss": "a last will is plain MQTT",
    "cp-auth-plug-id-and-email-logins": "valid credentials are accepted anywhere; CP-AUTH discriminates by a will not checked at CONNECT",
    "cp-auth-username-neither-plug-id-nor-email-refused": "an unknown user name is refused by the spec's broker too (CONNACK 4)",
    "cp-transports-tcp-and-tls": "plain MQTT and MQTT over TLS are the spec's own transports",
    "it-consumer-publish-acknowledged-and-dropped": "ack-and-drop is the spec's own answer (MQTT-3.3.5-2)",
    "it-jwt-password-accepted": "a valid credential is accepted anywhere; IT-JWT discriminates by refusing bad tokens",
    "it-tls-1-2-accepted": "a TLS 1.2 connection is plain MQTT over TLS; IT-TLS discriminates by refusing plain TCP",
    "it-session-offline-queues-qos1-qos2-not-qos0": "the spec's own (MQTT-3.1.2-4, -5: QoS 0 may be left out)",
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

# Capabilities the `reference-<platform>` target leaves off, with the settings that make its launched
# broker show them: these scenarios run against such a broker (the strict one gets the same settings).
ENABLE: dict[str, dict[str, Any]] = {
    "c8y_certificate_login": {"client_id_from_cn": True},
}


def _settings(profile: str, scenario: Scenario | None = None) -> dict[str, Any]:
    entry = load_targets().entries.get(f"reference-{profile}") or {}
    settings = dict(entry.get("settings") or {})
    for need in scenario.requires if scenario is not None else ():
        settings.update(ENABLE.get(need, {}))
    return settings


def _target(profile: str, settings: dict[str, Any] | None = None) -> TargetSession:
    """A launched reference broker as the `reference-<profile>` target of targets.yaml (settings included)."""
    spec = TargetSpec(name=f"reference-{profile}", source="test_discrimination", launch="reference", profile=profile,
                      settings=_settings(profile) if settings is None else settings)
    return TargetSession(spec, load_profile(profile))


def _platform_accounts() -> dict[str, Account]:
    """Every platform's own accounts, as the reference broker registers them with the platform's settings."""
    found: dict[str, Account] = {}
    for platform in PLATFORMS:
        kind = PERSONALITIES[load_profile(platform).personality]
        settings = {**load_profile(platform).settings, **_settings(platform)}
        found.update({name: Account(*pair) for name, pair in kind.platform_accounts(settings).items()})
    return found


def _start_strict() -> TargetSession:
    """The strict reference broker, registering the platforms' own accounts besides the standard ones."""
    session = _target("strict", {})
    accounts = {**STANDARD_ACCOUNTS, **_platform_accounts()}
    with pytest.MonkeyPatch.context() as patch:
        strict = LAUNCHERS["reference"]
        patch.setitem(LAUNCHERS, "reference", dataclasses.replace(strict, start=lambda request, **options: strict.start(
            dataclasses.replace(request, accounts=accounts), **options)))
        session.endpoint()  # starts the broker
    return session


@pytest.fixture(scope="module")
def brokers() -> Iterator[dict[str, TargetSession]]:
    started: dict[str, TargetSession] = {}
    try:
        started["strict"] = _start_strict()
        for personality in (load_profile(p).personality for p in PLATFORMS):
            started[personality] = _target(_profile_of(personality))
            started[personality].endpoint()  # starts the broker
        for need, settings in ENABLE.items():  # a platform broker with the capability's settings
            platform = next(p for p in PLATFORMS if load_profile(p).capabilities.get(need) is not None)
            started[need] = _target(platform, {**_settings(platform), **settings})
            started[need].endpoint()
        yield started
    finally:
        for broker in started.values():
            broker.stop()


def _profile_of(personality: str) -> str:
    return next((p for p in PLATFORMS if load_profile(p).personality == personality), "strict")


def _broker(brokers: dict[str, TargetSession], scenario: Scenario, name: str) -> TargetSession:
    """The started broker for `name` (strict or a personality); a personality's variant for a capability
    in ENABLE. The strict broker stays as the spec has it: its mtls listener takes any certificate the
    CA signed, and a CONNECT without credentials is not authorized."""
    need = next((n for n in scenario.requires if n in ENABLE), None)
    return brokers[need] if need is not None and name != "strict" else brokers[name]


def _run(broker: TargetSession, scenario: Scenario, profile: str) -> None:
    platform = _target(profile, _settings(profile, scenario))  # not started: its settings and default endpoint
    endpoint = broker.endpoint(platform.default_endpoints()[0])
    # The strict broker's run writes the platform's account shapes (the same credentials it registered).
    accounts = {**_platform_accounts(), **endpoint.accounts}
    endpoint = dataclasses.replace(endpoint, profile=profile, settings=platform.settings, accounts=accounts)
    ScenarioRunner(scenario, endpoint, f"disc{abs(hash(scenario.id)) % 10**8}", timeout=2.0).run()


def test_every_platform_with_a_profile_has_deviation_scenarios() -> None:
    for platform in PLATFORMS:
        assert deviation_scenarios(platform), f"{platform}: no deviation scenario"


@pytest.mark.parametrize("platform, scenario", CASES, ids=[f"{p}:{s.id}" for p, s in CASES])
def test_passes_with_the_platform_personality(brokers: dict[str, TargetSession], platform: str, scenario: Scenario) -> None:
    _run(_broker(brokers, scenario, load_profile(platform).personality), scenario, platform)


@pytest.mark.parametrize("platform, scenario", CASES, ids=[f"{p}:{s.id}" for p, s in CASES])
def test_fails_with_the_strict_personality(brokers: dict[str, TargetSession], platform: str, scenario: Scenario) -> None:
    with pytest.raises(ScenarioFailed):
        _run(_broker(brokers, scenario, "strict"), scenario, platform)
