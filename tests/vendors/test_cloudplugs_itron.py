"""The CloudPlugs and Itron personalities' platform rules (harness/broker/personalities/cloudplugs.py,
personalities/itron.py), the endpoints a platform's `transports` setting picks, and `expect_close:
{idle_setting}`. Personality rules are driven by hand; the transport refusal and the idle limit
against launched reference brokers."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.broker.config import BrokerConfig
from harness.broker.personalities.cloudplugs import CloudPlugsPersonality, data_payload, plug_id_for
from harness.broker.personalities.itron import ItronPersonality
from harness.broker.personality import ClientInfo, Personality
from harness.broker.retained import Message
from harness.launch import launch
from harness.scenarios.model import load_scenarios
from harness.scenarios.runner import Endpoint, ScenarioFailed, ScenarioRunner, SetupFailed
from harness.targets import TargetSession, TargetSpec
from harness.targets.profiles import load_profile
from harness.wire import Connect, Version, encode


def _personality(cls: type[Personality], profile: str, broker: Any = None, **options: Any) -> Any:
    config = BrokerConfig()
    config.personality_options = {**load_profile(profile).settings, **options}
    return cls(config, broker)


def _client(client_id: str = "hw1", username: str | None = "harness@cloudplugs.example") -> ClientInfo:
    return ClientInfo(client_id=client_id, version=4, username=username, password=b"code")


# -- transports (CP-TRANSPORTS, IT-TLS) ----------------------------------------------------------


@pytest.mark.parametrize("cls, profile, served", [
    (ItronPersonality, "itron", {"tls"}),
    (CloudPlugsPersonality, "cloudplugs", {"tcp", "tls"}),
    (Personality, "strict", {"tcp", "tls", "ws", "wss"}),
])
def test_listeners_served_follow_the_transports_setting(cls: type[Personality], profile: str, served: set[str]) -> None:
    personality = _personality(cls, profile)
    assert {t for t in ("tcp", "tls", "ws", "wss") if personality.serves(t)} == served


def test_itron_transports_setting_can_open_plain_tcp() -> None:
    assert _personality(ItronPersonality, "itron", transports=["tcp", "tls"]).serves("tcp")


def _session(profile: str, **settings: Any) -> TargetSession:
    spec = TargetSpec(name=f"reference-{profile}", source="test", launch="reference", profile=profile, settings=settings)
    return TargetSession(spec, load_profile(profile))


def test_default_and_all_endpoints_are_those_the_platform_serves() -> None:
    itron, cloudplugs, strict = _session("itron"), _session("cloudplugs"), _session("strict")
    assert itron.default_endpoints() == ["tls"]
    assert itron.choose_endpoints("all") == ["tls"]
    assert cloudplugs.choose_endpoints(None) == ["tcp"]
    assert cloudplugs.choose_endpoints("all") == ["tcp", "tls"]
    assert strict.choose_endpoints("all") == ["tcp", "tls", "ws", "wss"]
    assert itron.choose_endpoints("tcp") == ["tcp"]  # asked for by name: the run goes there anyway
    assert _session("itron", transports=["tcp", "tls"]).default_endpoints() == ["tcp"]


def test_a_websocket_scenario_is_skipped_where_the_platform_has_no_websocket(tmp_path: Path) -> None:
    path = tmp_path / "ws.yaml"
    path.write_text(textwrap.dedent("""
        defaults: {protocol: "3.1.1"}
        scenarios:
          - {id: ws, title: WS, refs: [], transports: [ws, wss], steps: [{connected: {}}]}
    """), encoding="utf-8")
    scenario = load_scenarios(path)[0]
    cloudplugs = _session("cloudplugs")
    cloudplugs.choose_endpoints(None)
    [(endpoint, kind, _)] = cloudplugs.variants(scenario)
    assert endpoint is None
    assert cloudplugs.missing_for(scenario, endpoint, kind) == \
        "scenario is about ws or wss; profile cloudplugs serves only tcp, tls (setting transports)"
    strict = _session("strict")
    strict.choose_endpoints(None)
    assert [v[0] for v in strict.variants(scenario)] == ["ws"]


def test_itron_plain_tcp_closed_unanswered_tls_served(tmp_path: Path) -> None:
    broker = launch("reference", tmp_path, personality="itron", transports=("tcp", "tls"),
                    personality_options=load_profile("itron").settings)
    try:
        with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
            sock.sendall(encode(Connect(client_id="plain", username="u", password=b"p"), Version.V311))
            assert sock.recv(16) == b""  # closed, no CONNACK
        assert "tls" in broker.endpoints  # and the TLS listener is there (readiness came from the log line)
    finally:
        broker.stop()


# -- CP-CLIENTID, CP-AUTH ------------------------------------------------------------------------


@pytest.mark.parametrize("client_id, refused", [
    ("hw1", False), ("hw1/kitchen", False), ("dev 42/My Name", False),
    ("", True), ("/kitchen", True), ("hw1/", True), ("hw1/a/b", True),
])
def test_clientid_is_hwid_or_hwid_slash_name(client_id: str, refused: bool) -> None:
    refusal = _personality(CloudPlugsPersonality, "cloudplugs").check_connect(_client(client_id))
    assert (refusal is not None) == refused
    if refusal is not None:
        assert (refusal.code, refusal.code5) == (2, 0x85)


def test_clientid_refusal_code_is_a_setting() -> None:
    refusal = _personality(CloudPlugsPersonality, "cloudplugs", bad_clientid_code=5).check_connect(_client("/x"))
    assert refusal is not None and refusal.code == 5


def test_the_hwid_is_the_device() -> None:
    personality = _personality(CloudPlugsPersonality, "cloudplugs")
    assert personality.client_key("hw1/kitchen", 4) == personality.client_key("hw1/garage", 4) == personality.client_key("hw1", 4)


@pytest.mark.parametrize("username, refused", [
    ("dev-123456789012345678901234", False), ("someone@example.com", False), ("", False), (None, False),
    ("harness", True), ("dev-", True), ("a@b", True),
])
def test_user_name_is_a_plug_id_or_an_email(username: str | None, refused: bool) -> None:
    refusal = _personality(CloudPlugsPersonality, "cloudplugs").check_connect(_client("hw1", username))
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.code == 4


def test_harness_accounts_get_the_platform_shapes() -> None:
    options = load_profile("cloudplugs").settings
    assert CloudPlugsPersonality.account("harness", "s1", options) == ("harness@cloudplugs.example", "s1")
    plug, code = CloudPlugsPersonality.account("restricted", "s2", options)
    assert plug == plug_id_for("restricted") and code == "s2"
    assert plug.startswith("dev-") and len(plug) == 28  # the document's dev- and 24 characters


# -- CP-DATA-TOPICS ------------------------------------------------------------------------------


def test_data_payload_fills_id_and_at_and_refuses_what_is_not_data() -> None:
    filled = json.loads(data_payload(b'{"data": [1, 2]}') or b"")
    assert filled["data"] == [1, 2] and isinstance(filled["id"], str) and isinstance(filled["at"], int)
    complete = b'{"id": "m1", "data": null, "at": 1}'
    assert data_payload(complete) is complete
    for bad in (b"21.5", b"not json", b'{"value": 1}', b"\xff", b'["data"]'):
        assert data_payload(bad) is None


def test_only_data_topics_are_rewritten() -> None:
    personality = _personality(CloudPlugsPersonality, "cloudplugs")
    client = _client()
    plain = Message("mqc/x/y", b"anything", 0)
    assert personality.on_publish(client, plain) is plain  # not a platform topic: plain MQTT
    assert personality.on_publish(client, Message("dev-1/data/temp", b"oops", 0)) is None
    relayed = personality.on_publish(client, Message("dev-1/data/temp", b'{"data": 3}', 0))
    assert relayed is not None and json.loads(relayed.payload)["data"] == 3


# -- CP-PROPS ------------------------------------------------------------------------------------


@dataclass
class FakeConnection:
    client: ClientInfo
    published: list[tuple[str, Any]] = field(default_factory=list)

    def send_publish(self, message: Message, qos: int, retain: bool, packet_id: Any, dup: bool, sub_ids: Any) -> bool:
        self.published.append((message.topic, json.loads(message.payload)))
        return True


class FakeBroker:
    def __init__(self) -> None:
        self.connections: dict[str, FakeConnection] = {}

    def flush(self) -> None:
        pass


def test_properties_set_get_and_errors_answered_on_the_channel() -> None:
    broker = FakeBroker()
    personality = _personality(CloudPlugsPersonality, "cloudplugs", broker)
    client = _client("hw9/x")
    connection = FakeConnection(client)
    broker.connections[personality.client_key(client.client_id, 4)] = connection

    async def requests() -> None:
        for topic, payload in [("dev-9/ag/prop/set", b'{"a": 1, "b": {"channel": "c"}}'), ("dev-9/ag/prop/get", b'["a", "zz"]'),
                               ("dev-9/ag/prop/get", b""), ("dev-9/ag/prop/set", b"[1]"), ("dev-9/ag/prop/get", b"{}"),
                               ("dev-8/ag/prop/get", b"")]:
            assert personality.on_publish(client, Message(topic, payload, 0)) is None  # consumed, not relayed
        await asyncio.sleep(0)

    asyncio.run(requests())
    assert connection.published == [
        ("dev-9/ag/prop/set", {"ok": True}),
        ("dev-9/ag/prop/get", {"a": 1}),
        ("dev-9/ag/prop/get", {"a": 1, "b": {"channel": "c"}}),
        ("dev-9/ag/prop/set", {"err": 400, "msg": "set: expected a JSON object"}),
        ("dev-9/ag/prop/get", {"err": 400, "msg": "get: expected nothing or a JSON array of names"}),
        ("dev-8/ag/prop/get", {}),  # properties belong to a Plug-ID
    ]


# -- CP-KEEPALIVE: expect_close {idle_setting} ---------------------------------------------------


def _idle_scenario(tmp_path: Path, setting: str = "idle_timeout") -> Any:
    path = tmp_path / "idle.yaml"
    path.write_text(textwrap.dedent(f"""
        defaults: {{protocol: "3.1.1"}}
        scenarios:
          - id: idle
            title: Idle
            refs: [CP-KEEPALIVE]
            steps:
              - connected: {{keep_alive: 0}}
              - expect_close: {{idle_setting: {setting}}}
    """), encoding="utf-8")
    return load_scenarios(path)[0]


@pytest.mark.parametrize("personality, passes", [("cloudplugs", True), ("strict", False)])
def test_idle_setting_close(tmp_path: Path, personality: str, passes: bool) -> None:
    settings = {**load_profile("cloudplugs").settings, "idle_timeout": 1}
    broker = launch("reference", tmp_path, personality=personality, personality_options=settings)
    try:
        endpoint = Endpoint(host=broker.host, port=broker.port, accounts=broker.accounts, profile="cloudplugs", settings=settings)
        runner = ScenarioRunner(_idle_scenario(tmp_path), endpoint, "idle1")
        if passes:
            runner.run()
            waited = runner.record.steps[-1].stopped - runner.record.steps[-1].started
            assert 0.5 <= waited <= 2.0
        else:
            with pytest.raises(ScenarioFailed, match=r"within 2 s \(setting idle_timeout \+ keepalive_grace\)\nreceived: still open after 4 s"):
                runner.run()
        with pytest.raises(SetupFailed, match="no numeric setting 'nope'"):
            ScenarioRunner(_idle_scenario(tmp_path, "nope"), endpoint, "idle2").run()
    finally:
        broker.stop()
