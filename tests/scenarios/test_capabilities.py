"""Which scenarios apply to a target: `requires` (X and no_X) and, for 5.0, what the broker's CONNACK
announces it lacks against the features a scenario's steps use."""

import textwrap
from pathlib import Path

import pytest

from harness.errors import ScenarioFileError
from harness.scenarios.model import load_scenarios
from harness.targets import TargetSession, TargetSpec
from harness.targets.profiles import load_profile


def _scenarios(tmp_path: Path, body: str, protocol: str = "5.0"):
    path = tmp_path / "s.yaml"
    path.write_text(f'defaults: {{protocol: "{protocol}", area: t}}\nscenarios:\n' + textwrap.indent(textwrap.dedent(body), "  "),
                    encoding="utf-8")
    return {s.id: s for s in load_scenarios(path, "s.yaml")}


def _session(announced: dict, profile: str = "strict", **capabilities: bool) -> TargetSession:
    session = TargetSession(TargetSpec(name="t", source="test", url="mqtt://127.0.0.1:1", capabilities=capabilities),
                            load_profile(profile))
    session._announced = announced  # what the probe would have read from CONNACK
    return session


USES = """
- id: qos2-publish
  title: t
  refs: []
  steps:
    - connected:
    - send: {packet: publish, topic: a, qos: 2, packet_id: 1}
- id: will-retain
  title: t
  refs: []
  steps:
    - connect: {will: {topic: w, payload: x, qos: 1, retain: true}}
- id: subscriptions
  title: t
  refs: []
  steps:
    - connected:
    - send: {packet: subscribe, packet_id: 1, properties: {subscription_identifier: 3},
             subscriptions: [{topic_filter: "$share/g/a/+", qos: 1}, {topic_filter: "b", qos: 0}]}
    - send: {packet: publish, topic: a, properties: {topic_alias: 1}}
- id: plain
  title: t
  refs: []
  steps:
    - connected:
    - send: {packet: publish, topic: a, qos: "${q}"}
- id: about-no-retain
  title: t
  refs: []
  requires: [no_retain]
  steps:
    - connected:
    - send: {packet: publish, topic: a, retain: true}
"""


def test_the_features_a_scenario_uses_come_from_what_it_sends(tmp_path):
    found = {key: set(s.uses) for key, s in _scenarios(tmp_path, USES).items()}
    assert found["qos2-publish"] == {"qos2"}
    assert found["will-retain"] == {"qos1", "retain"}
    assert found["subscriptions"] == {"subscription_identifiers", "shared_subscriptions", "wildcard_subscriptions", "qos1",
                                      "topic_alias"}
    assert found["plain"] == set()  # a ${...} value is not guessed
    assert found["about-no-retain"] == set()  # the feature it is about is not a need


def test_a_broker_that_announces_a_lack_skips_the_5_0_scenarios_using_it(tmp_path):
    scenarios = _scenarios(tmp_path, USES)
    limited = _session({"maximum_qos": 1, "retain_available": 0, "topic_alias_maximum": 5})
    reason = limited.missing_capabilities(scenarios["qos2-publish"])
    assert reason == "the scenario uses qos2 (line 9), which target t lacks: its CONNACK announces maximum_qos=1"
    assert "retain (line 14)" in limited.missing_capabilities(scenarios["will-retain"])
    assert limited.missing_capabilities(scenarios["subscriptions"]) is None  # nothing it uses is denied
    assert limited.missing_capabilities(scenarios["about-no-retain"]) is None
    full = _session({"topic_alias_maximum": 10})
    assert all(full.missing_capabilities(s) is None for key, s in scenarios.items() if key != "about-no-retain")
    assert "offers retain" in full.missing_capabilities(scenarios["about-no-retain"])
    no_alias = _session({"receive_maximum": 20})  # Topic Alias Maximum absent means 0
    assert "topic_alias_maximum=0" in no_alias.missing_capabilities(scenarios["subscriptions"])


def test_announcements_do_not_apply_to_3_x_scenarios(tmp_path):
    scenario = _scenarios(tmp_path, USES.split("- id: will-retain")[0], protocol="3.1.1")["qos2-publish"]
    assert _session({"maximum_qos": 0}).missing_capabilities(scenario) is None


def test_requires_and_requires_absent(tmp_path):
    scenarios = _scenarios(tmp_path, """
    - id: needs-qos2
      title: t
      refs: []
      requires: [qos2]
      steps: [{connected: }]
    - id: about-no-qos2
      title: t
      refs: []
      requires: [no_qos2]
      steps: [{connected: }]
    """)
    announced_lack = _session({"maximum_qos": 1})
    assert announced_lack.missing_capabilities(scenarios["needs-qos2"]) == (
        "target t does not offer: qos2 (its CONNACK announces maximum_qos=1)")
    assert announced_lack.missing_capabilities(scenarios["about-no-qos2"]) is None
    profile_lack = _session({}, qos2=False)  # the target says so; no announcement needed
    assert profile_lack.missing_capabilities(scenarios["needs-qos2"]) == "target t does not offer: qos2"
    assert profile_lack.missing_capabilities(scenarios["about-no-qos2"]) is None
    full = _session({})
    assert full.missing_capabilities(scenarios["needs-qos2"]) is None
    assert full.missing_capabilities(scenarios["about-no-qos2"]).startswith("target t offers qos2")


def test_the_limited_profile_describes_the_reference_broker_config():
    profile = load_profile("limited")
    assert profile.capabilities["qos2"] is False and profile.capabilities["retain"] is False
    assert profile.broker["limits"]["maximum_qos"] == 1


def test_an_unknown_absent_capability_is_a_load_error(tmp_path):
    with pytest.raises(ScenarioFileError, match="requires"):
        _scenarios(tmp_path, """
        - id: x
          title: t
          refs: []
          requires: [no_such_thing]
          steps: [{connected: }]
        """)
