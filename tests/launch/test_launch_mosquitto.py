"""mosquitto as the harness launches it: free port, standard accounts, ACLs refused on the wire."""

# ruff: noqa: F811  (pytest fixtures imported from launch_fixtures are test parameters too)

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from launch_fixtures import V5, V31, V311, mosquitto, mosquitto_missing_reason, mqtt_client  # noqa: F401

from harness.launch import RESTRICTED_PREFIX, LaunchError, PortInUseError, RunningBroker, launch
from harness.launch import listeners as launcher_listeners
from harness.launch.process import group_members

needs_mosquitto = pytest.mark.skipif(
    mosquitto_missing_reason() is not None, reason=str(mosquitto_missing_reason())
)
VERSIONS = pytest.mark.parametrize("version", [V31, V311, V5], ids=["3.1", "3.1.1", "5.0"])
REFUSED = {V311: 0x80, V5: 0x87}  # SUBACK failure: 3.1.1 return code / 5.0 "Not authorized"


def assert_only_marker_arrives(subscriber, marker_topic: str) -> None:
    """The next PUBLISH is the marker: whatever was published before it was not delivered.

    No sleep: the publisher sent the marker after the message under test on the same connection,
    and the broker handles a connection's packets in order.
    """
    topic, payload = subscriber.next_publish()
    assert (topic, payload) == (marker_topic, b"marker")


@needs_mosquitto
def test_launch_reports_port_version_and_url(mosquitto: RunningBroker) -> None:
    assert mosquitto.name == "mosquitto"
    assert mosquitto.host == "127.0.0.1" and mosquitto.port not in (1883, 8883)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert mosquitto.version is not None and mosquitto.version.startswith("2.")
    assert mosquitto.log_path.is_file()
    assert mosquitto.accounts["default"].username == "harness"
    assert mosquitto.accounts["restricted"].username == "restricted"


@needs_mosquitto
@VERSIONS
@pytest.mark.parametrize("account", ["default", "restricted"])
def test_standard_accounts_connect(mosquitto: RunningBroker, mqtt_client, version: int, account: str) -> None:
    creds = mosquitto.accounts[account]
    client = mqtt_client(mosquitto, version)
    assert client.connect(creds.username, creds.password, client_id=f"acct-{account}-{version}") == 0


@needs_mosquitto
@VERSIONS
def test_wrong_password_and_anonymous_are_refused(
    mosquitto: RunningBroker, mqtt_client, version: int
) -> None:
    refused = {0x86, 0x87} if version == V5 else {4, 5}  # bad credentials / not authorized
    assert mqtt_client(mosquitto, version).connect("harness", "wrong") in refused
    assert mqtt_client(mosquitto, version).connect("restricted", "harness-secret") in refused
    assert mqtt_client(mosquitto, version).connect(None, None) in refused


@needs_mosquitto
@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
def test_restricted_subscribe_refused_outside_prefix(
    mosquitto: RunningBroker, mqtt_client, version: int
) -> None:
    creds = mosquitto.accounts["restricted"]
    client = mqtt_client(mosquitto, version)
    assert client.connect(creds.username, creds.password, client_id=f"rsub-{version}") == 0
    for outside in ("other/topic", "#", "acl/+/x", "$SYS/#", "acl/allowedx"):
        assert client.subscribe(outside, qos=1) == [REFUSED[version]], outside
    for inside in (f"{RESTRICTED_PREFIX}/#", f"{RESTRICTED_PREFIX}/a/+", RESTRICTED_PREFIX):
        assert client.subscribe(inside, qos=1) == [1], inside


@needs_mosquitto
def test_restricted_subscribe_outside_prefix_delivers_nothing_in_31(
    mosquitto: RunningBroker, mqtt_client
) -> None:
    # MQTT 3.1 has no SUBACK failure code: mosquitto answers with a QoS but subscribes nothing.
    restricted, default = mosquitto.accounts["restricted"], mosquitto.accounts["default"]
    client = mqtt_client(mosquitto, V31)
    assert client.connect(restricted.username, restricted.password, client_id="rsub31") == 0
    client.subscribe("t31/outside", qos=0)
    client.subscribe(f"{RESTRICTED_PREFIX}/t31", qos=0)
    publisher = mqtt_client(mosquitto, V311)
    assert publisher.connect(default.username, default.password, client_id="pub31") == 0
    publisher.publish("t31/outside", b"must not arrive")
    publisher.publish(f"{RESTRICTED_PREFIX}/t31", b"marker")
    assert_only_marker_arrives(client, f"{RESTRICTED_PREFIX}/t31")


@needs_mosquitto
@VERSIONS
def test_restricted_publish_outside_prefix_is_not_delivered(
    mosquitto: RunningBroker, mqtt_client, version: int
) -> None:
    restricted, default = mosquitto.accounts["restricted"], mosquitto.accounts["default"]
    watcher = mqtt_client(mosquitto, V5)
    assert watcher.connect(default.username, default.password, client_id=f"watch-{version}") == 0
    assert watcher.subscribe(f"rpub{version}/#", qos=0) == [0]
    assert watcher.subscribe(f"{RESTRICTED_PREFIX}/rpub{version}", qos=0) == [0]
    publisher = mqtt_client(mosquitto, version)
    assert publisher.connect(restricted.username, restricted.password, client_id=f"rpub-{version}") == 0
    publisher.publish(f"rpub{version}/x", b"must not arrive")
    publisher.publish(f"{RESTRICTED_PREFIX}/rpub{version}", b"marker")
    assert_only_marker_arrives(watcher, f"{RESTRICTED_PREFIX}/rpub{version}")


@needs_mosquitto
@VERSIONS
def test_default_account_may_do_everything(mosquitto: RunningBroker, mqtt_client, version: int) -> None:
    default = mosquitto.accounts["default"]
    client = mqtt_client(mosquitto, version)
    assert client.connect(default.username, default.password, client_id=f"all-{version}") == 0
    for topic_filter in ("#", "$SYS/#", f"{RESTRICTED_PREFIX}/#"):
        assert client.subscribe(topic_filter, qos=1) == [1], topic_filter
    client.publish(f"any{version}/where", b"hello")
    while (published := client.next_publish())[0].startswith("$SYS/"):  # retained $SYS state first
        pass
    assert published == (f"any{version}/where", b"hello")


@needs_mosquitto
def test_anonymous_mosquitto_has_no_accounts_and_lets_everyone_in(tmp_path: Path, mqtt_client) -> None:
    with launch("mosquitto", tmp_path, anonymous=True) as broker:
        assert broker.accounts == {}
        config = next(tmp_path.glob("mosquitto-*/mosquitto.conf")).read_text()
        assert "allow_anonymous true" in config and "plugin" not in config
        for version in (V31, V311, V5):
            client = mqtt_client(broker, version)
            assert client.connect(None, None, client_id=f"anon{version}") == 0
            assert client.subscribe("any/where", qos=1) == [1]


@needs_mosquitto
def test_stop_leaves_no_process_and_frees_the_port(tmp_path: Path) -> None:
    started = time.monotonic()
    broker = launch("mosquitto", tmp_path)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"startup took {elapsed:.2f} s"
    pid = broker.pid
    assert pid is not None and group_members(pid) == [pid]
    broker.stop()
    assert group_members(pid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", broker.port))
    broker.stop()  # idempotent


def test_missing_binary_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSQUITTO_BIN", str(tmp_path / "no-such-mosquitto"))
    with pytest.raises(LaunchError) as caught:
        launch("mosquitto", tmp_path)
    assert str(caught.value) == (
        f"mosquitto: binary {tmp_path / 'no-such-mosquitto'} not found (apt-get install mosquitto)"
    )


@needs_mosquitto
def test_bad_config_names_the_log_line(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as caught:
        launch("mosquitto", tmp_path, extra_config=["no_such_option 1"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        'mosquitto: exited with code 3 at startup: Error: Unknown configuration variable "no_such_option".'
    )


@needs_mosquitto
@pytest.mark.parametrize("listening", [True, False], ids=["served", "bound"])
def test_explicit_port_in_use_is_reported(tmp_path: Path, listening: bool) -> None:
    expected = (
        r"^mosquitto: 127\.0\.0\.1:\d+ is already in use by another process$"
        if listening  # caught before starting
        else r"^mosquitto: exited with code 1 at startup: Error: Address already in use"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        if listening:
            taken.listen()
        with pytest.raises(PortInUseError, match=expected):
            launch("mosquitto", tmp_path, port=taken.getsockname()[1])


@needs_mosquitto
def test_lost_port_race_is_retried_on_a_new_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_free_port = launcher_listeners.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: mosquitto itself fails to bind
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(launcher_listeners, "free_port", lambda: next(ports, None) or real_free_port())
        with launch("mosquitto", tmp_path) as broker:
            assert broker.port != taken.getsockname()[1]
