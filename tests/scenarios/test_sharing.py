"""Which scenarios need the broker to themselves (harness.scenarios.sharing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scenarios.model import Scenario, load_scenarios
from harness.scenarios.sharing import alone_reason


def scenario(tmp_path: Path, steps: str, extra: str = "") -> Scenario:
    path = tmp_path / "scenarios" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"""\
scenarios:
  - id: s
    title: t
    protocol: "3.1.1"
    refs: [MQTT-3.8.4-1]
{extra}    steps:
{steps}""", encoding="utf-8")
    (loaded,) = load_scenarios(path, "s.yaml")
    return loaded


def subscribe(topic_filter: str) -> str:
    return f"""      - connected: {{}}
      - send: {{packet: subscribe, packet_id: 1, subscriptions: [{{topic_filter: "{topic_filter}", qos: 0}}]}}
"""


@pytest.mark.parametrize("topic_filter", ["${topic}/#", "${topic}/+/x", "${acl_allowed}/y", "mqc/${cid}/z"])
def test_filters_below_the_scenarios_own_names_share_nothing(tmp_path: Path, topic_filter: str) -> None:
    assert alone_reason(scenario(tmp_path, subscribe(topic_filter)), {}, "strict") is None


@pytest.mark.parametrize("topic_filter", ["#", "+/status", "$SYS/#", "${setting:tenant}/alert/#"])
def test_a_broad_filter_outside_them_runs_alone(tmp_path: Path, topic_filter: str) -> None:
    reason = alone_reason(scenario(tmp_path, subscribe(topic_filter)), {"tenant": "t1"}, "strict")
    assert reason is not None and "subscribes to" in reason and "line 8" in reason


def test_a_fixed_topic_runs_alone(tmp_path: Path) -> None:
    steps = "      - connected: {}\n      - send: {packet: publish, topic: s/us, payload: x}\n"
    assert "uses the fixed topic s/us" in alone_reason(scenario(tmp_path, steps), {}, "strict")


def test_a_publish_to_a_wildcard_topic_is_refused_and_shares_nothing(tmp_path: Path) -> None:
    steps = "      - connected: {}\n      - send: {packet: publish, topic: '+', payload: x}\n"
    assert alone_reason(scenario(tmp_path, steps), {}, "strict") is None


@pytest.mark.parametrize(("client_id", "alone"), [("${random:1}", True), ("${random:23}", False), ("", False),
                                                  ("${setting:device}", True), ("d:${cid}", False)])
def test_a_clientid_is_shared_unless_it_is_the_scenarios_own_or_long_and_random(tmp_path: Path, client_id: str,
                                                                                alone: bool) -> None:
    steps = f"      - connect: {{client_id: \"{client_id}\"}}\n"
    reason = alone_reason(scenario(tmp_path, steps), {"device": "d:fixed"}, "strict")
    assert (reason is not None) is alone
    if alone:
        assert "ClientId" in reason


def test_a_setting_that_holds_the_scenarios_clientid_gives_it_a_name_of_its_own(tmp_path: Path) -> None:
    steps = "      - connect: {client_id: 'd:org:T:${setting:device_id}'}\n"
    s = scenario(tmp_path, steps)
    assert alone_reason(s, {"device_id": "${cid}"}, "watson-iot") is None  # the reference broker's imitation
    assert alone_reason(s, {"device_id": "gateway-7"}, "watson-iot") is not None  # a real platform's device


def test_a_value_saved_from_the_scenarios_own_traffic_is_its_own(tmp_path: Path) -> None:
    steps = (subscribe("${topic}/#")
             + "      - expect: {packet: publish, save: {long: topic}}\n"
             + "      - send: {packet: publish, topic: '${long}', payload: x}\n")
    assert alone_reason(scenario(tmp_path, steps), {}, "strict") is None


def test_the_file_or_the_profile_can_say_so(tmp_path: Path) -> None:
    s = scenario(tmp_path, "      - connected: {}\n", extra="    alone: counts every connection the broker has\n")
    assert alone_reason(s, {}, "strict") == "counts every connection the broker has"
    plain = scenario(tmp_path, "      - connected: {}\n")
    assert alone_reason(plain, {}, "strict") is None
    assert alone_reason(plain, {}, "mine", {"s": "the broker allows 10 connections"}) == \
        "the profile mine says: the broker allows 10 connections"
    assert alone_reason(plain, {}, "mine", {"every scenario": "it drops messages while clients come and go"}) == \
        "the profile mine says: it drops messages while clients come and go"
    assert alone_reason(plain, {}, "mine", {"other": "the broker allows 10 connections"}) is None


def test_amqtt_runs_every_scenario_alone() -> None:
    """amqtt drops a PUBLISH it is routing when another client subscribes meanwhile (its profile)."""
    from harness import suite
    from harness.targets.profiles import load_profile

    profile = load_profile("amqtt")
    scenarios = [s for p in suite.scenario_files() for s in load_scenarios(p)]
    assert all(alone_reason(s, {}, profile.name, profile.run_alone) for s in scenarios)


def test_an_empty_alone_is_a_collection_error(tmp_path: Path) -> None:
    from harness.errors import ScenarioFileError

    with pytest.raises(ScenarioFileError, match="alone"):
        scenario(tmp_path, "      - connected: {}\n", extra="    alone: ''\n")


def test_the_built_in_suite_runs_alone_only_what_shares_a_name(tmp_path: Path) -> None:
    """Against the strict profile, the 3.x and 5.0 scenarios share only a one-character ClientId and the
    fixed names they give in hex (invalid UTF-8, a NUL): a broker that accepts one shares it."""
    from harness import suite

    alone = {s.id for p in suite.scenario_files() if "vendors" not in p.parts for s in load_scenarios(p)
             if alone_reason(s, {}, "strict")}
    assert alone == {"clientid-one-character-accepted", "clientid-invalid-utf8", "will-topic-invalid-utf8",
                     "publish-topic-invalid-bytes-closes", "publish-topic-overlong-closes",
                     "subscribe-filter-invalid-utf8-closes", "publish-topic-with-nul-closes",
                     "publish-topic-with-surrogate-closes"}


def test_a_clientid_given_in_hex_is_a_fixed_name(tmp_path: Path) -> None:
    """RabbitMQ accepts the ClientId FF FE: two variants connecting with it at once take each other over."""
    s = scenario(tmp_path, '      - connect: {client_id: {hex: "ff fe"}}\n')
    assert alone_reason(s, {}, "strict") == "step at line 7 uses the fixed ClientId (hex ff fe), which other scenarios may use too"
