"""The watson-iot personality of the reference broker: application ClientIds and API keys (W-APP-AUTH),
the application topic space (W-TOPICS), application monitoring (W-MON-APP), scalable applications
(W-SHARED-APP) and the quickstart organisation (W-QUICKSTART), plus the traffic counts of the
Disconnect monitoring message. Unit tests of the hooks, then one run against a launched broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.broker.config import BrokerConfig
from harness.broker.personalities import PERSONALITIES
from harness.broker.personalities.watson import WatsonPersonality, app_of, close_code, org_of, topic_shape
from harness.broker.personality import ClientInfo, Decision, Personality, Refusal
from harness.broker.retained import Message, RetainedStore
from harness.launch import launch
from harness.launch.base import RunningBroker
from harness.scenarios.model import load_scenarios
from harness.scenarios.runner import Endpoint, ScenarioRunner
from harness.targets.profiles import load_profile

OPTIONS = {"org": "org1", "quickstart_org": "quickstart", "topic_violation": "deny"}


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[Message] = []
        self.retained = RetainedStore(100)
        self.connections: dict[str, Any] = {}

    def publish(self, message: Message) -> int:
        self.published.append(message)
        if message.retain:
            self.retained.store(message)
        return 0


def personality(**options: Any) -> tuple[WatsonPersonality, FakeBroker]:
    config = BrokerConfig()
    config.personality_options = {**OPTIONS, **options}
    broker = FakeBroker()
    return WatsonPersonality(config, broker), broker


def client(client_id: str, username: str | None = "a-org1-key", version: int = 4, **fields: Any) -> ClientInfo:
    return ClientInfo(client_id=client_id, version=version, username=username, password=b"token", **fields)


def test_registered_and_accounts_are_api_keys() -> None:
    assert PERSONALITIES["watson-iot"] is WatsonPersonality
    assert WatsonPersonality.account("harness", "secret", {"org": "acme42"}) == ("a-acme42-harness", "secret")


def test_client_id_parsing() -> None:
    assert app_of("a:org1:app") == ("org1", "app", False)
    assert app_of("A:org1:app:with:colons") == ("org1", "app:with:colons", True)
    assert app_of("a:org1:") is None and app_of("b:org1:x") is None and app_of("plain") is None
    assert org_of("d:org1:T:D") == "org1" and org_of("A:org2:x") == "org2" and org_of("mqc123") is None


def test_app_auth_api_key_of_the_client_ids_organisation() -> None:
    p, _ = personality()
    assert p.check_connect(client("a:org1:app")) is None
    refused = p.check_connect(client("a:org2:app"))
    assert refused is not None and (refused.code, refused.code5) == (5, 0x87)
    assert p.check_connect(client("a:org1:app", username=None)) is not None
    assert p.check_connect(client("a:org1:app", username="harness")) is not None
    assert p.check_connect(client("plain", username=None)) is None  # the spec's own clients untouched
    assert not p.authenticated(client("a:org1:app"))  # the token is checked by the user table


def test_shared_app_rules() -> None:
    p, _ = personality()
    assert p.shared_client(client("A:org1:app")) == "A:org1:app"
    assert p.shared_client(client("a:org1:app")) is None and p.shared_client(client("d:org1:T:D")) is None
    assert p.check_connect(client("A:org1:app.x_y-1")) is None
    for bad in ("A:org1:a/b", "A:org1:a b", "A:org1:a+b"):
        refused = p.check_connect(client(bad))
        assert refused is not None and refused.code == 2, bad
    assert p.check_connect(client("A:org1:app", clean_start=False)) is not None
    assert p.check_connect(client("A:org1:app", version=5, properties={"session_expiry_interval": 60})) is not None
    assert p.check_connect(client("A:org1:app", version=5, properties={"session_expiry_interval": 0})) is None


def test_strict_shares_no_client_id() -> None:
    assert Personality(BrokerConfig()).shared_client(client("A:org1:app")) is None


def test_quickstart_rules() -> None:
    p, _ = personality()
    assert p.authenticated(client("d:quickstart:T:D", username=None))
    assert p.authenticated(client("a:quickstart:app", username=None))
    assert p.check_connect(client("a:quickstart:app", username=None)) is None
    assert p.check_connect(client("a:quickstart:app", username=None, transport="tls")) is not None
    assert p.check_connect(client("d:quickstart:T:D", username=None, transport="wss")) is not None
    assert p.check_connect(client("A:quickstart:app", username=None)) is not None
    quick = client("a:quickstart:app", username=None)
    assert p.authorize_subscribe(quick, "iot-2/type/T/id/D/evt/+/fmt/json", 0) is Decision.ALLOW
    assert p.authorize_subscribe(quick, "iot-2/type/+/id/D/evt/+/fmt/json", 0) is Decision.ALLOW  # + for the type is fine
    assert p.authorize_subscribe(quick, "iot-2/type/T/id/+/evt/+/fmt/json", 0) is Decision.DENY
    assert p.authorize_subscribe(quick, "iot-2/app/+/mon", 0) is Decision.DENY
    assert p.authorize_subscribe(quick, "iot-2/type/T/id/D/cmd/+/fmt/json", 0) is Decision.DENY
    assert p.authorize_publish(quick, "iot-2/type/T/id/D/cmd/c/fmt/json", 0, False) is Decision.DENY
    assert p.authorize_publish(quick, "iot-2/type/T/id/D/evt/e/fmt/json", 0, False) is Decision.ALLOW
    device = client("d:quickstart:T:D", username=None)
    assert p.authorize_subscribe(device, "iot-2/cmd/+/fmt/+", 0) is Decision.DENY


@pytest.mark.parametrize("topic, ok", [
    ("iot-2/type/T/id/D/evt/E/fmt/json", True),
    ("iot-2/type/T/id/D/cmd/C/fmt/json", True),
    ("iot-2/type/T/id/D/mon", False),  # monitoring is the platform's to publish
    ("iot-2/type/T/id/D/evt/E", False),
    ("iot-2/type//id/D/evt/E/fmt/json", False),
    ("mqc/x", False),
])
def test_application_publish_topics(topic: str, ok: bool) -> None:
    p, _ = personality()
    assert (p.authorize_publish(client("a:org1:app"), topic, 0, False) is Decision.ALLOW) is ok


@pytest.mark.parametrize("topic_filter, ok", [
    ("iot-2/type/+/id/+/evt/+/fmt/+", True),
    ("iot-2/type/T/id/+/cmd/+/fmt/json", True),
    ("iot-2/type/+/id/+/mon", True),
    ("iot-2/app/+/mon", True),
    ("iot-2/type/+/id/+/evt/#", False),
    ("#", False),
    ("iot-2/app/x", False),
])
def test_application_subscribe_filters(topic_filter: str, ok: bool) -> None:
    p, _ = personality()
    assert (p.authorize_subscribe(client("a:org1:app"), topic_filter, 0) is Decision.ALLOW) is ok


def test_devices_and_plain_clients_keep_the_acl() -> None:
    p, _ = personality()
    assert p.authorize_publish(client("plain"), "mqc/x", 0, False) is Decision.ALLOW
    assert p.authorize_subscribe(client("d:org1:T:D"), "iot-2/cmd/+/fmt/+", 0) is Decision.ALLOW


def test_topic_shape_reports_the_pattern() -> None:
    assert topic_shape("iot-2/app/x/mon", ((("iot-2", "app", "*id", "mon")),)) is not None
    assert topic_shape("iot-2/app/x/mon/y", ((("iot-2", "app", "*id", "mon")),)) is None


def test_close_codes_of_topic_violations() -> None:
    assert close_code("topic not valid: mqc/x")[0] == 276
    assert close_code("not authorized: quickstart has no commands")[0] == 180
    assert close_code("not authorized to publish to x")[0] == 180


def test_application_monitoring_connect_retained_disconnect_not_and_cleared() -> None:
    p, broker = personality()
    app = client("a:org1:app", address=("10.0.0.1", 5555))
    p.on_connected(app)
    connect = broker.published[-1]
    assert connect.topic == "iot-2/app/app/mon" and connect.retain and connect.qos == 0
    body = json.loads(connect.payload)
    assert body["Action"] == "Connect" and body["ClientID"] == "a:org1:app" and body["User"] == "a-org1-key"
    assert body["ClientAddr"] == "10.0.0.1" and body["Secure"] is False and body["Protocol"] == "mqtt4-tcp"
    assert "ReadBytes" not in body and "CloseCode" not in body
    assert broker.retained.get("iot-2/app/app/mon") is not None
    app.traffic = {"read_bytes": 40, "write_bytes": 12, "read_msgs": 2, "write_msgs": 1}
    p.on_disconnected(app, "client disconnected")
    disconnect = broker.published[-1]
    body = json.loads(disconnect.payload)
    assert not disconnect.retain and body["Action"] == "Disconnect" and "CloseCode" not in body
    assert (body["ReadBytes"], body["ReadMsg"], body["WriteBytes"], body["WriteMsg"]) == (40, 2, 12, 1)
    assert broker.retained.get("iot-2/app/app/mon") is None  # W-MON-APP: cleared


def test_failed_connect_not_retained_with_its_close_code() -> None:
    p, broker = personality()
    p.on_refused(client("a:org1:app"), Refusal(4, 0x86, "bad user name or password"))
    failed = broker.published[-1]
    body = json.loads(failed.payload)
    assert failed.topic == "iot-2/app/app/mon" and not failed.retain and failed.qos == 0
    assert body["Action"] == "FailedConnect" and body["CloseCode"] == 180 and "ReadBytes" not in body
    p.on_refused(client("d:org1:T:D"), Refusal(2, 0x85, "bad ClientId"))
    assert json.loads(broker.published[-1].payload)["CloseCode"] == 166
    p.on_refused(client("plain"), Refusal(5, 0x87, "no"))
    assert len(broker.published) == 2  # the spec's own clients get no monitoring


def test_device_disconnect_stays_retained_with_its_close_code() -> None:
    p, broker = personality()
    device = client("d:org1:T:D", transport="wss")
    p.on_connected(device)
    p.on_disconnected(device, "keep alive timeout")
    body = json.loads(broker.published[-1].payload)
    assert broker.published[-1].retain and body["CloseCode"] == 160 and body["Protocol"] == "mqtt4-ws"
    assert body["Secure"] is True
    assert json.loads(broker.retained.get("iot-2/type/T/id/D/mon").payload)["Action"] == "Disconnect"  # type: ignore[union-attr]


# -- against a launched broker: the core's share group and traffic counts ----------------------------------

SCENARIOS = """
defaults: {protocol: "3.1.1", area: vendor_watson}
scenarios:
  - id: traffic
    title: The Disconnect message counts bytes and PUBLISH packets both ways
    refs: [W-MON-DEVICE]
    steps:
      - connected: {on: watch, client_id: "a:org1:${cid}w"}
      - send: {on: watch, packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: "iot-2/type/T/id/${cid}/mon", qos: 0}]}
      - expect: {on: watch, packet: suback, packet_id: 1, reason_codes: [0]}
      - connected: {on: dev, client_id: "d:org1:T:${cid}", account: device}
      - expect: {on: watch, packet: publish, payload: {json: {Action: Connect}}}
      - send: {on: dev, packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: "iot-2/type/T/id/${cid}/evt/+/fmt/json", qos: 0}]}
      - expect: {on: dev, packet: suback, packet_id: 1, reason_codes: [0]}
      - send: {on: dev, packet: publish, topic: "iot-2/type/T/id/${cid}/evt/a/fmt/json", payload: "1234", qos: 0}
      - expect: {on: dev, packet: publish, payload: "1234"}
      - send: {on: dev, packet: publish, topic: "iot-2/type/T/id/${cid}/evt/b/fmt/json", payload: "5678", qos: 0}
      - expect: {on: dev, packet: publish, payload: "5678"}
      - disconnect: dev
      # ClientId d:org1:T:wptraffic, use-token-auth with its token, topics of 40 bytes. Read: CONNECT (70) +
      # SUBSCRIBE (47) + 2 PUBLISH (48 each) + DISCONNECT (2); written: CONNACK (4) + SUBACK (5) + 2 PUBLISH (48 each).
      - expect: {on: watch, packet: publish, payload: {json: {Action: Disconnect, ReadMsg: 2, WriteMsg: 2,
                                                             ReadBytes: 215, WriteBytes: 105}}}
  - id: shared
    title: Two connections of one A:org:app both stay; each event goes to one of them
    refs: [W-SHARED-APP]
    steps:
      - connected: {on: one, client_id: "A:org1:${cid}"}
      - send: {on: one, packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: "iot-2/type/T/id/+/evt/+/fmt/json", qos: 1}]}
      - expect: {on: one, packet: suback, packet_id: 1, reason_codes: [1]}
      - connected: {on: two, client_id: "A:org1:${cid}"}
      - send: {on: two, packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: "iot-2/type/T/id/+/evt/+/fmt/json", qos: 1}]}
      - expect: {on: two, packet: suback, packet_id: 1, reason_codes: [1]}
      - connected: {on: pub, client_id: "a:org1:${cid}p"}
      - send: {on: pub, packet: publish, topic: "iot-2/type/T/id/${cid}/evt/e/fmt/json", payload: "1", qos: 0}
      - send: {on: pub, packet: publish, topic: "iot-2/type/T/id/${cid}/evt/e/fmt/json", payload: "2", qos: 0}
      - send: {on: pub, packet: publish, topic: "iot-2/type/T/id/${cid}/evt/e/fmt/json", payload: "3", qos: 0}
      - expect: {on: one, packet: publish, payload: "1"}
      - expect: {on: two, packet: publish, payload: "2"}
      - expect: {on: one, packet: publish, payload: "3"}
      - disconnect: one
      - send: {on: pub, packet: publish, topic: "iot-2/type/T/id/${cid}/evt/e/fmt/json", payload: "4", qos: 0}
      - expect: {on: two, packet: publish, payload: "4"}
      - expect_nothing: two
      - disconnect: two
"""


@pytest.fixture(scope="module")
def watson(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    broker = launch("reference", tmp_path_factory.mktemp("watson"), personality="watson-iot",
                    personality_options=load_profile("watson-iot").settings)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("scenario_id", ["traffic", "shared"])
def test_against_the_launched_broker(watson: RunningBroker, tmp_path: Path, scenario_id: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    scenario = next(s for s in load_scenarios(path) if s.id == scenario_id)
    endpoint = Endpoint(host=watson.host, port=watson.port, accounts=watson.accounts, profile="watson-iot",
                        settings=load_profile("watson-iot").settings)
    ScenarioRunner(scenario, endpoint, f"wp{scenario_id}", timeout=3.0).run()


def test_setting_variable() -> None:
    """`${setting:NAME}`: a profile setting (targets.yaml overrides included) in a scenario value, so
    the Watson scenarios connect to the target's own organisation."""
    from harness.scenarios.values import UnresolvableValue, Variables, substitute

    variables = Variables(cid="c1", profile="watson-iot", accounts={}, acl_allowed_prefix="acl/allowed",
                          settings={"org": "acme42", "keepalive_grace": 1.5})
    assert substitute("a:${setting:org}:${cid}", variables) == "a:acme42:c1"
    assert substitute("${setting:keepalive_grace}", variables) == 1.5
    with pytest.raises(UnresolvableValue, match="no setting 'nope'"):
        substitute("${setting:nope}", variables)
