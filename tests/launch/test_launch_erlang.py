"""RabbitMQ and ejabberd as the harness launches them: loopback only, standard accounts, nothing left.

A cold RabbitMQ takes 10-20 s to start, so each broker is started once, in one test that checks
everything it serves and then that `stop()` leaves no process and no listening port behind.
"""

# ruff: noqa: F811  (pytest fixtures imported from launch_fixtures are test parameters too)

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from launch_fixtures import V311, mqtt_client  # noqa: F401

from harness.launch import RESTRICTED_PREFIX, BrokerNotInstalled, RunningBroker, launch, launcher_listeners
from harness.launch import ejabberd as ejabberd_launcher
from harness.launch import rabbitmq as rabbitmq_launcher
from harness.launch.erlang import descendants

BROKERS = {"rabbitmq": rabbitmq_launcher, "ejabberd": ejabberd_launcher}
LOOPBACK = {"127.0.0.1", "::1"}


def _listening_inodes() -> dict[str, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket, from /proc/net/tcp{,6}."""
    found = {}
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path("/proc/net", name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":  # LISTEN
                continue
            raw, port = local.split(":")
            data = bytes.fromhex(raw)
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, data[::-1])
            else:  # four little-endian 32-bit words
                address = socket.inet_ntop(socket.AF_INET6, b"".join(data[i : i + 4][::-1] for i in range(0, 16, 4)))
            found[inode] = (address, int(port, 16))
    return found


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every socket the processes listen on."""
    inodes = _listening_inodes()
    result = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                result.add(inodes[target[8:-1]])
    return result


def _connect(mqtt_client, broker: RunningBroker, account: str | None, password: str | None = None, cid: str = "c") -> int:
    if account is None:
        return mqtt_client(broker, V311).connect(None, None, client_id=cid)
    creds = broker.accounts[account]
    return mqtt_client(broker, V311).connect(creds.username, password or creds.password, client_id=cid)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes and sockets through /proc")
@pytest.mark.parametrize("kind", list(BROKERS))
def test_serves_on_loopback_with_standard_accounts_and_stops_completely(
    kind: str, tmp_path: Path, mqtt_client
) -> None:
    problem = BROKERS[kind].installed()
    if problem:
        pytest.skip(problem)
    broker = launch(kind, tmp_path, transports=launcher_listeners(kind))
    try:
        assert broker.version and broker.version[0].isdigit(), broker.version
        assert set(broker.endpoints) == {"tcp", "tls", "ws", "wss"}
        pid = broker.pid
        assert pid is not None
        processes = [pid] + [child for child, _ in descendants(pid)] + [h.pid for h in broker.process.helpers if h.pid]
        sockets = listening_sockets(processes)
        assert {endpoint.port for endpoint in broker.endpoints.values()} <= {port for _, port in sockets}
        # the MQTT listeners, the Erlang distribution port and epmd alike
        assert {address for address, _ in sockets} <= LOOPBACK, sockets

        assert _connect(mqtt_client, broker, "default", cid="d") == 0
        assert _connect(mqtt_client, broker, "restricted", cid="r") == 0
        assert _connect(mqtt_client, broker, "default", password="wrong", cid="w") in (4, 5)
        assert _connect(mqtt_client, broker, None, cid="a") in (4, 5)

        creds = broker.accounts["restricted"]
        client = mqtt_client(broker, V311)
        assert client.connect(creds.username, creds.password, client_id="rsub") == 0
        assert client.subscribe(f"{RESTRICTED_PREFIX}/#", qos=1) == [1]
        assert client.subscribe(f"{RESTRICTED_PREFIX}/a/+", qos=1) == [1]
        # A refused filter, each the way its baseline records: RabbitMQ closes the connection,
        # ejabberd answers 0x8F (a 5.0 code) where 3.1.1 says 0x80.
        if kind == "rabbitmq":
            with pytest.raises(ConnectionError):
                client.subscribe("other/topic", qos=1)
        else:
            assert client.subscribe("other/topic", qos=1) == [0x8F]
    finally:
        broker.stop()
    left = [p for p in processes if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
    assert left == [], f"{kind} left processes behind: {left}"
    for address, port in sockets:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
            probe.settimeout(0.5)
            assert probe.connect_ex((address, port)) != 0, f"{address}:{port} still accepts after stop"


@pytest.mark.parametrize(("kind", "variable"), [("rabbitmq", "RABBITMQ_BIN_DIR"), ("ejabberd", "EJABBERDCTL_BIN")])
def test_not_installed_is_broker_not_installed(kind: str, variable: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "absent"))
    with pytest.raises(BrokerNotInstalled, match="not installed"):
        launch(kind, tmp_path)


def test_rabbitmq_topic_permission_regex() -> None:
    import re

    allowed = re.compile(rabbitmq_launcher.filter_regex("acl/allowed/#"))
    for key in ("acl.allowed", "acl.allowed.x", "acl.allowed.x.y", "acl.allowed.#", "acl.allowed.*.z"):
        assert allowed.match(key), key
    for key in ("acl.allowedx", "acl", "other.acl.allowed", "#", "acl.*"):
        assert not allowed.match(key), key
    assert re.compile(rabbitmq_launcher.filter_regex("#")).match("any.thing")
    assert rabbitmq_launcher.filter_regex("a/+/b") == r"^a\.[^.]*\.b$"


def test_rabbitmq_password_hash_is_salted_sha256() -> None:
    import base64
    import hashlib

    encoded = rabbitmq_launcher.hash_password("secret", salt=b"\x01\x02\x03\x04")
    assert base64.b64decode(encoded) == b"\x01\x02\x03\x04" + hashlib.sha256(b"\x01\x02\x03\x04secret").digest()


def test_ejabberd_access_rules_most_specific_first() -> None:
    from harness.launch import STANDARD_ACCOUNTS

    rules = ejabberd_launcher.access_rules(STANDARD_ACCOUNTS)
    assert list(rules) == [f"{RESTRICTED_PREFIX}/#", "#"]
    assert rules[f"{RESTRICTED_PREFIX}/#"] == [{"allow": "harness_default"}, {"allow": "harness_restricted"}, {"deny": "all"}]
    assert rules["#"] == [{"allow": "harness_default"}, {"deny": "all"}]
    text = ejabberd_launcher.mod_mqtt_yml(STANDARD_ACCOUNTS)
    assert f'"{RESTRICTED_PREFIX}/#": [allow: harness_default, allow: harness_restricted, deny: all]' in text
