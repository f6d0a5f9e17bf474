"""Authentication, ACL, enhanced authentication (5.0 AUTH) and the configured limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from broker_helpers import BrokerProcess, Client, running_broker, uid

from harness.broker.auth import hmac_sha256_response
from harness.wire import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Puback,
    Publish,
    Pubrec,
    Subscription,
    Version,
    Will,
)

V31, V311, V5 = Version.V31, Version.V311, Version.V5
MakeClient = Callable[..., Client]

AUTH_CONFIG = {
    "auth": {"allow_anonymous": False, "users": {"harness": "pw1", "restricted": "pw2", "dev": "pw3"}},
    "acl": [
        {"user": "harness", "allow": [{"topic": "#", "access": "readwrite"}]},
        {"user": "restricted", "allow": [{"topic": "acl/allowed/#", "access": "readwrite"}]},
        {"user": "dev", "allow": [{"topic": "dev/%c/#", "access": "readwrite"}, {"topic": "users/%u/in", "access": "read"}]},
    ],
    "limits": {"max_connections": 6},
}


@pytest.fixture(scope="module")
def secured() -> Iterator[BrokerProcess]:
    with running_broker(AUTH_CONFIG) as proc:
        yield proc


@pytest.fixture
def connect_as(secured: BrokerProcess, make_client: MakeClient) -> Callable[..., Client]:
    def make(user: str, password: str, version: Version = V311, client_id: str | None = None) -> Client:
        c = make_client(secured.port, version)
        c.connect(client_id or uid(), username=user, password=password.encode())
        return c

    return make


@pytest.mark.parametrize(("version", "bad", "anonymous"), [(V31, 4, 5), (V311, 4, 5), (V5, 0x86, 0x87)])
def test_credentials(secured: BrokerProcess, make_client: MakeClient, version: Version, bad: int, anonymous: int) -> None:
    c = make_client(secured.port, version)
    c.send(Connect(client_id=uid(), username="harness", password=b"wrong"))
    got = c.expect_closed()
    assert [(p.reason_code, p.session_present) for p in got] == [(bad, False)]  # MQTT-3.2.2-4/-5
    c = make_client(secured.port, version)
    c.send(Connect(client_id=uid()))
    assert [p.reason_code for p in c.expect_closed()] == [anonymous]
    c = make_client(secured.port, version)
    c.connect(uid(), username="harness", password=b"pw1")


@pytest.mark.parametrize(("version", "denied"), [(V311, 0x80), (V5, 0x87)])
def test_acl_subscribe_and_publish(connect_as: Callable[..., Client], version: Version, denied: int) -> None:
    base = uid()
    admin = connect_as("harness", "pw1", version)
    admin.subscribe("acl/#", qos=1)
    r = connect_as("restricted", "pw2", version)
    codes = r.subscribe(Subscription(topic_filter=f"acl/allowed/{base}", qos=1),
                        Subscription(topic_filter="acl/#", qos=1), Subscription(topic_filter="#", qos=0))
    assert codes == [1, denied, denied]  # 3.1.1 MQTT-3.9.3-2 / 5.0 0x87
    ack = r.publish(f"acl/secret/{base}", b"denied", qos=1)  # acknowledged, dropped
    assert isinstance(ack, Puback) and ack.reason_code == (0x87 if version is V5 else 0)
    r.send(Publish(topic=f"acl/secret/{base}", payload=b"denied2", qos=2, packet_id=3))
    assert r.expect(Pubrec).reason_code == (0x87 if version is V5 else 0)
    r.send(Publish(topic=f"acl/allowed/{base}", payload=b"fine", qos=1, packet_id=4))
    own = sorted((type(p).__name__, getattr(p, "payload", b"")) for p in (r.recv(), r.recv()))
    assert own == [("Puback", b""), ("Publish", b"fine")]  # its own subscription matched too
    got = admin.receive_publish()
    assert got.payload == b"fine" and admin.ping() == []  # the denied ones never arrived


@pytest.mark.parametrize(("version", "code"), [(V311, 5), (V5, 0x87)])
def test_will_topic_outside_acl_refused(secured: BrokerProcess, make_client: MakeClient, version: Version,
                                        code: int) -> None:
    c = make_client(secured.port, version)
    c.send(Connect(client_id=uid(), username="restricted", password=b"pw2", will=Will(topic="acl/other", payload=b"x")))
    assert [p.reason_code for p in c.expect_closed()] == [code]


def test_v31_denied_subscribe_is_granted_but_silent(connect_as: Callable[..., Client]) -> None:
    base = uid()
    r = connect_as("restricted", "pw2", V31)
    assert r.subscribe("acl/other/" + base, qos=1) == [1]  # 3.1 has no failure code (NOTES.md)
    admin = connect_as("harness", "pw1")
    admin.publish("acl/other/" + base, b"x", qos=1)
    assert r.ping() == []


def test_acl_substitution(connect_as: Callable[..., Client]) -> None:
    cid = uid()
    d = connect_as("dev", "pw3", V5, client_id=cid)
    assert d.subscribe(f"dev/{cid}/#", "dev/other/#", "users/dev/in", "users/bob/in") == [0, 0x87, 0, 0x87]
    d.send(Publish(topic=f"dev/{cid}/x", payload=b"own", qos=1, packet_id=1))
    own = sorted((type(p).__name__, getattr(p, "reason_code", getattr(p, "payload", None))) for p in (d.recv(), d.recv()))
    assert own == [("Puback", 0), ("Publish", b"own")]
    assert d.publish("users/dev/in", b"x", qos=1).reason_code == 0x87  # type: ignore[union-attr]  # read only


def test_enhanced_authentication(secured: BrokerProcess, make_client: MakeClient) -> None:
    method = {"authentication_method": "HMAC-SHA256"}
    c = make_client(secured.port, V5)
    c.send(Connect(client_id=uid(), properties={**method, "authentication_data": b"harness"}))
    challenge = c.expect(Auth)
    assert challenge.reason_code == 0x18 and challenge.properties["authentication_method"] == "HMAC-SHA256"
    nonce = challenge.properties["authentication_data"]
    c.send(Auth(reason_code=0x18, properties={**method, "authentication_data": hmac_sha256_response("pw1", nonce)}))
    connack = c.expect(Connack)
    assert connack.reason_code == 0 and connack.properties["authentication_method"] == "HMAC-SHA256"  # MQTT-4.12.0-5
    # re-authentication
    c.send(Auth(reason_code=0x19, properties={**method, "authentication_data": b"harness"}))
    nonce = c.expect(Auth).properties["authentication_data"]
    c.send(Auth(reason_code=0x18, properties={**method, "authentication_data": hmac_sha256_response("pw1", nonce)}))
    assert c.expect(Auth).reason_code == 0
    assert c.subscribe("#") == [0]  # authenticated as harness
    # wrong answer
    bad = make_client(secured.port, V5)
    bad.send(Connect(client_id=uid(), properties={**method, "authentication_data": b"harness"}))
    bad.expect(Auth)
    bad.send(Auth(reason_code=0x18, properties={**method, "authentication_data": b"nope"}))
    assert [p.reason_code for p in bad.expect_closed()] == [0x87]  # MQTT-4.12.0-4
    # unknown method
    other = make_client(secured.port, V5)
    other.send(Connect(client_id=uid(), properties={"authentication_method": "SCRAM-NOPE"}))
    assert [p.reason_code for p in other.expect_closed()] == [0x8C]  # MQTT-4.12.0-1


def test_auth_packet_without_method_is_protocol_error(connect_as: Callable[..., Client]) -> None:
    c = connect_as("harness", "pw1", V5)
    c.send(Auth(reason_code=0x19, properties={"authentication_method": "HMAC-SHA256"}))
    assert [(type(p), p.reason_code) for p in c.expect_closed()] == [(Disconnect, 0x82)]


def test_max_connections(secured: BrokerProcess, make_client: MakeClient, connect_as: Callable[..., Client]) -> None:
    clients = [connect_as("harness", "pw1") for _ in range(6)]
    extra = make_client(secured.port, V311)
    extra.send(Connect(client_id=uid(), username="harness", password=b"pw1"))
    assert [p.reason_code for p in extra.expect_closed()] == [3]  # server unavailable
    extra5 = make_client(secured.port, V5)
    extra5.send(Connect(client_id=uid(), username="harness", password=b"pw1"))
    assert [p.reason_code for p in extra5.expect_closed()] == [0x97]
    clients[0].disconnect()
    clients[1].ping()  # barrier: the broker has handled the disconnect
    connect_as("harness", "pw1")


def test_denied_publish_disconnect_mode(make_client: MakeClient) -> None:
    with running_broker({**AUTH_CONFIG, "denied_publish": "disconnect"}) as proc:
        for version, expected in ((V311, []), (V5, [(Disconnect, 0x87)])):
            c = make_client(proc.port, version)
            c.connect(uid(), username="restricted", password=b"pw2")
            c.send(Publish(topic="acl/other", payload=b"x", qos=1, packet_id=1))
            assert [(type(p), p.reason_code) for p in c.expect_closed()] == expected  # 3.1.1 MQTT-3.3.5-2


def test_queue_and_packet_limits(make_client: MakeClient) -> None:
    config = {"auth": {"allow_anonymous": True},
              "limits": {"max_queued_messages": 3, "max_inflight": 1, "max_packet_size": 300, "maximum_qos": 1}}
    with running_broker(config) as proc:
        cid, topic = uid(), "lim/" + uid()
        s = make_client(proc.port, V311)
        s.connect(cid, clean=False)
        assert s.subscribe(topic, qos=2) == [1]  # granted the maximum QoS
        s.disconnect()
        p = make_client(proc.port, V311)
        p.connect(uid())
        for i in range(10):
            p.publish(topic, b"%d" % i, qos=1, packet_id=i + 1)
        s = make_client(proc.port, V311)
        s.connect(cid, clean=False)
        got = [s.receive_publish().payload for _ in range(3)]
        assert got == [b"0", b"1", b"2"] and s.ping() == []  # bounded: the rest were dropped
        big = make_client(proc.port, V311)
        big.connect(uid())
        big.send(Publish(topic="x", payload=b"x" * 400))
        assert big.expect_closed() == []  # over max_packet_size: closed (3.x has no reason code)
        q2 = make_client(proc.port, V311)
        q2.connect(uid())
        q2.send(Publish(topic="x", qos=2, packet_id=1))
        assert q2.expect_closed() == []  # above maximum QoS
