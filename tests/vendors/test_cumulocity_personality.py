"""The Cumulocity personality's platform model (harness/broker/personalities/cumulocity.py) and the
SmartREST codec (harness/broker/smartrest.py), driven by hand with a fake broker: no sockets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.broker.config import BrokerConfig
from harness.broker.personalities.cumulocity import (
    CumulocityLegacyPersonality,
    CumulocityPersonality,
    data_topic,
    filters_overlap,
    upstream,
)
from harness.broker.personality import ClientInfo, Decision
from harness.broker.retained import Message
from harness.broker.smartrest import SmartRestError, format_row, parse_rows
from harness.targets.profiles import load_profile
from harness.wire import Connack

# -- SmartREST rows ------------------------------------------------------------------------------


def test_document_examples_parse() -> None:
    assert parse_rows(b"100,\"This value, needs escaping\",This value does not need escaping") == [
        ["100", "This value, needs escaping", "This value does not need escaping"]]
    # The subscribe example: \n inside quotes is two characters, \" an escaped quote.
    assert parse_rows('511,myDeviceSerial,"execute this\\nand this\\nand \\"this\\""') == [
        ["511", "myDeviceSerial", 'execute this\\nand this\\nand "this"']]


def test_several_rows_empty_values_and_quoted_line_breaks() -> None:
    payload = b'100,Dev,c8y_MQTTDevice\n101,c1,"two\nlines",\n\n106\n'
    assert parse_rows(payload) == [["100", "Dev", "c8y_MQTTDevice"], ["101", "c1", "two\nlines", ""], ["106"]]
    assert parse_rows(b"") == []


@pytest.mark.parametrize("payload, row, words", [
    (b'400,c8y_E,"unterminated', 1, "unterminated"),
    (b'100,a\n400,"x"y', 2, "after a closing quote"),
    (b'400,ab"c', 1, "quote inside an unquoted value"),
])
def test_malformed_csv_names_the_row_and_keeps_the_rows_before(payload: bytes, row: int, words: str) -> None:
    with pytest.raises(SmartRestError, match=words) as caught:
        parse_rows(payload)
    assert caught.value.row == row
    assert caught.value.rows == ([["100", "a"]] if row == 2 else [])


def test_format_row_quotes_what_the_document_says_and_round_trips() -> None:
    values = ["41", "100", 'a "quoted", value', " padded", "tab\there", "plain"]
    text = format_row(values)
    assert text == '41,100,"a \\"quoted\\", value"," padded","tab\there",plain'
    assert parse_rows(text) == [values]


# -- topics --------------------------------------------------------------------------------------


def test_data_topics() -> None:
    assert data_topic("s/us") == "" and data_topic("t/us/child") == "child"
    assert data_topic("s/ds") is None and data_topic("x/us") is None and data_topic("s/us/a/b") is None
    assert upstream("s/ucr") and upstream("s/uc/myTemplates") and upstream("q/us") and not upstream("s/e")


@pytest.mark.parametrize("a, b, overlap", [
    ("s/us", "s/us", True), ("#", "s/us", True), ("+/us", "s/us", True), ("s/us/#", "s/us", True),
    ("s/+", "s/us/+", False), ("+/abc/#", "s/us", False), ("s/ds", "s/us", False), ("s/us/x", "s/us/+", True),
])
def test_filters_overlap(a: str, b: str, overlap: bool) -> None:
    assert filters_overlap(a, b) is overlap and filters_overlap(b, a) is overlap


def _client(client_id: str = "d:dev1", version: int = 4, clean: bool = True, **kw: Any) -> ClientInfo:
    return ClientInfo(client_id=client_id, version=version, username="t100/harness", password=b"pw", clean_start=clean, **kw)


def _personality(cls: type[CumulocityPersonality] = CumulocityPersonality, profile: str = "cumulocity",
                 broker: Any = None, **options: Any) -> CumulocityPersonality:
    config = BrokerConfig()
    config.personality_options = {**load_profile(profile).settings, **options}
    return cls(config, broker)


@pytest.mark.parametrize("topic_filter, version, decision", [
    ("s/us", 4, Decision.DENY), ("s/us/#", 4, Decision.DENY), ("t/us/c1", 4, Decision.DENY), ("#", 4, Decision.DENY),
    ("+/us", 4, Decision.DENY), ("s/ucr", 4, Decision.DENY), ("s/us", 3, Decision.SILENT),
    ("s/ds", 4, Decision.ALLOW), ("s/e", 4, Decision.ALLOW), ("s/dcr", 4, Decision.ALLOW), ("+/abc/#", 4, Decision.ALLOW),
])
def test_no_subscription_to_data_topics(topic_filter: str, version: int, decision: Decision) -> None:
    assert _personality().authorize_subscribe(_client(version=version), topic_filter, 0) is decision


def test_only_the_platform_publishes_on_its_topics() -> None:
    personality = _personality()
    assert personality.authorize_publish(_client(), "s/e", 0, False) is Decision.DENY
    assert personality.authorize_publish(_client(), "s/ds", 0, False) is Decision.DENY
    assert personality.authorize_publish(_client(), "s/us", 0, True) is Decision.ALLOW


# -- the platform, with a fake broker ------------------------------------------------------------


@dataclass
class FakeSub:
    topic_filter: str
    qos: int


@dataclass
class FakeSession:
    subscriptions: dict[str, FakeSub] = field(default_factory=dict)
    delivered: list[tuple[str, bytes, int, bool]] = field(default_factory=list)
    expiry: int | None = None
    will: Message | None = None

    def deliver(self, message: Message, qos: int, retain: bool, sub_ids: Any) -> None:
        self.delivered.append((message.topic, message.payload, qos, retain))


@dataclass
class FakeConnection:
    client: ClientInfo
    session: FakeSession
    sent: list[Any] = field(default_factory=list)
    closed: str | None = None

    def send(self, packet: Any) -> None:
        self.sent.append(packet)

    def _close(self, *, will: bool, reason: str = "", **kw: Any) -> None:
        self.closed = reason


class FakeBroker:
    def __init__(self) -> None:
        self.connections: dict[str, FakeConnection] = {}

    def flush(self) -> None:
        pass


def _device(personality: CumulocityPersonality, broker: FakeBroker, client_id: str = "d:dev1",
            subscriptions: dict[str, int] | None = None, **kw: Any) -> tuple[ClientInfo, FakeSession, FakeConnection]:
    client = _client(client_id, **kw)
    session = FakeSession({f: FakeSub(f, q) for f, q in (subscriptions or {"s/e": 0, "s/ds": 0, "s/dcr": 0}).items()})
    connection = FakeConnection(client, session)
    broker.connections[personality.client_key(client_id, 4)] = connection
    return client, session, connection


def _publish(personality: CumulocityPersonality, client: ClientInfo, topic: str, payload: bytes, qos: int = 0,
             retain: bool = False) -> Message | None:
    return personality.on_publish(client, Message(topic, payload, qos, retain, origin=client.client_id))


def test_rows_are_consumed_and_children_listed_at_the_subscription_qos() -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, _ = _device(personality, broker, subscriptions={"s/ds": 2, "s/e": 1})
    assert _publish(personality, client, "s/us", b"100,Dev,c8y_MQTTDevice\n101,c1,One,t\n101,c2,Two,t", retain=True) is None
    assert _publish(personality, client, "s/us/c3", b"200,c8y_T,T,1.5,C") is None  # creates c3
    _publish(personality, client, "s/us", b"106")
    assert session.delivered == [("s/ds", b"106,c1,c2,c3", 2, False)]
    assert personality.devices["dev1"].name == "Dev" and personality.devices["c3"].measurements == 1
    # other topics are plain MQTT
    message = Message("x/y", b"p", 0)
    assert personality.on_publish(client, message) is message


@pytest.mark.parametrize("payload, error", [
    (b"999,x", b"40,999,No static template for message id 999"),
    (b'400,c8y_E,"open', b"41,400,Malformed CSV in row 2: unterminated quoted value"),
    (b"200,c8y_T,T,warm", b"42,200,Measurement value is not a number: warm"),
    (b"101", b'42,101,"Expected 1 to 3 values, got 0"'),
])
def test_bad_rows_get_one_error_each_on_s_e(payload: bytes, error: bytes) -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, _ = _device(personality, broker)
    _publish(personality, client, "s/us", b"100,ok\n" + payload)
    assert session.delivered == [("s/e", error, 0, False)]


def test_errors_go_to_the_sending_device_only() -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, _ = _device(personality, broker, "d:dev1")
    _, other, _ = _device(personality, broker, "dev2")
    _publish(personality, client, "s/us", b"999")
    assert len(session.delivered) == 1 and other.delivered == []


def test_bootstrap_registers_then_issues_credentials_that_log_in() -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, _ = _device(personality, broker, "serial42")
    _publish(personality, client, "s/ucr", b"")
    assert session.delivered == []  # registered; the stand-in operator accepts it now
    _publish(personality, client, "s/ucr", b"")
    assert session.delivered == [("s/dcr", b"70,t100,device_serial42,c8y-device-secret", 0, False)]
    login = ClientInfo("serial42", 4, username="t100/device_serial42", password=b"c8y-device-secret")
    assert personality.authenticated(login)
    assert not personality.authenticated(ClientInfo("serial42", 4, username="t100/device_serial42", password=b"wrong"))


def test_legacy_has_no_bootstrap_and_no_broken_devices() -> None:
    broker = FakeBroker()
    personality = _personality(CumulocityLegacyPersonality, "cumulocity-legacy", broker=broker)
    client, session, connection = _device(personality, broker, "d:c8ybroken1")
    for _ in range(3):
        _publish(personality, client, "s/ucr", b"")
    _publish(personality, client, "s/us", b"106")
    assert session.delivered == [("s/ds", b"106", 0, False)] and connection.sent == []


def test_broken_device_gets_connack_5_mid_session() -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, connection = _device(personality, broker, "d:c8ybrokenX")
    assert _publish(personality, client, "s/us", b"200,c8y_T,T,1,C", qos=1) is None
    assert connection.sent == [Connack(reason_code=5)] and connection.closed and "managed object" in connection.closed
    assert session.delivered == []


@pytest.mark.parametrize("mode, refused, expiry", [("not_kept", False, 0), ("refuse", True, None), ("kept", False, None)])
def test_clean_session_0_setting(mode: str, refused: bool, expiry: int | None) -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker, clean_session_0=mode)
    client, session, _ = _device(personality, broker, clean=False)
    refusal = personality.check_connect(client)
    assert (refusal is not None and refusal.code == 5) is refused
    personality.on_connected(client)
    assert session.expiry == expiry
    # clean session 1 is never touched
    clean, clean_session, _ = _device(personality, broker, "other")
    assert personality.check_connect(clean) is None
    personality.on_connected(clean)
    assert clean_session.expiry is None


def test_clean_session_0_setting_checked() -> None:
    with pytest.raises(ValueError, match="clean_session_0"):
        _personality(clean_session_0="sometimes")  # when the broker starts, not at a CONNECT


def test_legacy_keeps_clean_session_0() -> None:
    broker = FakeBroker()
    personality = _personality(CumulocityLegacyPersonality, "cumulocity-legacy", broker=broker)
    client, session, _ = _device(personality, broker, clean=False)
    assert personality.check_connect(client) is None
    personality.on_connected(client)
    assert session.expiry is None


@pytest.mark.parametrize("reason, executed", [("connection lost", True), ("session taken over", True), ("client disconnected", False)])
def test_a_will_on_s_us_is_executed_as_smartrest_when_published(reason: str, executed: bool) -> None:
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, _ = _device(personality, broker)
    session.will = Message("s/us", b'400,c8y_ConnectionEvent,"lost"\n101,w1,Marker,t', 0)
    personality.on_connected(client)
    personality.on_disconnected(client, reason)
    device = personality.devices.get("dev1")
    if executed:
        assert device is not None and "w1" in device.children
        assert device.events == [["c8y_ConnectionEvent", "lost"]]
    else:
        assert device is None


def test_legacy_will_is_never_executed() -> None:
    broker = FakeBroker()
    personality = _personality(CumulocityLegacyPersonality, "cumulocity-legacy", broker=broker)
    client, session, _ = _device(personality, broker)
    session.will = Message("s/us", b"101,w1,Marker,t", 0)
    personality.on_connected(client)
    assert session.will is None
    personality.on_disconnected(client, "connection lost")
    assert "dev1" not in personality.devices


def test_records_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.broker.personalities.cumulocity as c8y

    monkeypatch.setattr(c8y, "MAX_RECORDS", 3)
    broker = FakeBroker()
    personality = _personality(broker=broker)
    client, session, _ = _device(personality, broker)
    _publish(personality, client, "s/us", b"\n".join(b"101,c%d" % i for i in range(6)))
    assert list(personality.devices) == ["c3", "c4", "c5"]  # the oldest forgotten, the device's own too
    for i in range(5):
        _publish(personality, client, f"s/us/k{i}", b"200,c8y_T,T,1,C")  # children by data
    assert len(personality.devices) == 3 and all(len(d.children) <= 3 for d in personality.devices.values())
