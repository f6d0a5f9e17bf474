"""amqtt and aedes as the harness launches them: every listener, standard accounts, ACLs, a full stop,
and a missing installation that skips the target instead of failing it."""

# ruff: noqa: F811  (pytest fixtures imported from launch_fixtures are test parameters too)

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from launch_fixtures import V311, mqtt_client  # noqa: F401

from harness.launch import (
    RESTRICTED_PREFIX,
    BrokerNotInstalled,
    LaunchError,
    RunningBroker,
    launch,
    launcher_listeners,
)
from harness.launch.process import group_members, port_accepts

pytest_plugins = ["pytester"]

KINDS = ["amqtt", "aedes"]


def _launch_or_skip(kind: str, workdir: Path, **options) -> RunningBroker:
    try:
        return launch(kind, workdir, **options)
    except BrokerNotInstalled as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One broker of each kind for the module, with every listener it can open."""
    kind = request.param
    running = _launch_or_skip(kind, tmp_path_factory.mktemp(kind), transports=launcher_listeners(kind))
    yield running
    running.stop()


def test_reports_version_listeners_and_accounts(broker: RunningBroker) -> None:
    assert broker.version and broker.version[0].isdigit(), broker.version
    names = set(broker.endpoints)
    assert {"tcp", "tls", "ws", "wss", "tls-expired", "tls-not-yet-valid"} <= names
    assert ("mtls" in names) == (broker.name == "aedes")  # amqtt cannot require a client certificate
    ports = [endpoint.port for endpoint in broker.endpoints.values()]
    assert len(set(ports)) == len(ports)
    for endpoint in broker.endpoints.values():
        assert endpoint.host == "127.0.0.1" and port_accepts(endpoint.host, endpoint.port), endpoint
    assert broker.ca_file is not None and broker.ca_file.is_file()
    assert broker.accounts["default"].username == "harness"


@pytest.mark.parametrize("account", ["default", "restricted"])
def test_standard_accounts_connect(broker: RunningBroker, mqtt_client, account: str) -> None:
    creds = broker.accounts[account]
    assert mqtt_client(broker, V311).connect(creds.username, creds.password, client_id=f"acct{account}") == 0


def test_wrong_password_unknown_user_and_anonymous_are_refused(broker: RunningBroker, mqtt_client) -> None:
    assert mqtt_client(broker, V311).connect("harness", "wrong", client_id="bad1") in (4, 5)
    assert mqtt_client(broker, V311).connect("nobody", "harness-secret", client_id="bad2") in (4, 5)
    assert mqtt_client(broker, V311).connect(None, None, client_id="bad3") in (4, 5)


def test_restricted_subscribe_refused_outside_prefix(broker: RunningBroker, mqtt_client) -> None:
    creds = broker.accounts["restricted"]
    client = mqtt_client(broker, V311)
    assert client.connect(creds.username, creds.password, client_id="rsub") == 0
    for outside in ("other/topic", "#", "acl/+/x", "acl/allowedx/y"):
        assert client.subscribe(outside, qos=1) == [0x80], outside
    for inside in (f"{RESTRICTED_PREFIX}/#", f"{RESTRICTED_PREFIX}/a/+", f"{RESTRICTED_PREFIX}/x"):
        assert client.subscribe(inside, qos=1) == [1], inside


def test_restricted_publish_outside_prefix_is_not_delivered(broker: RunningBroker, mqtt_client) -> None:
    restricted, default = broker.accounts["restricted"], broker.accounts["default"]
    watcher = mqtt_client(broker, V311)
    assert watcher.connect(default.username, default.password, client_id="watch") == 0
    assert watcher.subscribe("rpub/#", qos=0) == [0]
    assert watcher.subscribe(f"{RESTRICTED_PREFIX}/rpub", qos=0) == [0]
    publisher = mqtt_client(broker, V311)
    assert publisher.connect(restricted.username, restricted.password, client_id="rpub") == 0
    publisher.publish("rpub/x", b"must not arrive")
    with contextlib.suppress(ConnectionError, OSError):
        publisher.ping()  # amqtt acknowledges and drops the message; aedes closes the connection
    allowed = mqtt_client(broker, V311)
    assert allowed.connect(restricted.username, restricted.password, client_id="rpub2") == 0
    allowed.publish(f"{RESTRICTED_PREFIX}/rpub", b"marker")
    assert watcher.next_publish() == (f"{RESTRICTED_PREFIX}/rpub", b"marker")


def test_default_account_may_do_everything(broker: RunningBroker, mqtt_client) -> None:
    default = broker.accounts["default"]
    client = mqtt_client(broker, V311)
    assert client.connect(default.username, default.password, client_id="all") == 0
    for topic_filter in ("#", f"{RESTRICTED_PREFIX}/#", "any/+/where"):
        assert client.subscribe(topic_filter, qos=1) == [1], topic_filter
    client.publish("any/thing/where", b"hello")
    while (published := client.next_publish())[0].startswith("$SYS/"):  # aedes' heartbeat, if it comes
        pass
    assert published == ("any/thing/where", b"hello")


@pytest.mark.parametrize("kind", KINDS)
def test_stop_leaves_no_process_and_frees_every_port(kind: str, tmp_path: Path) -> None:
    broker = _launch_or_skip(kind, tmp_path, transports=launcher_listeners(kind))
    pid = broker.pid
    assert pid is not None and pid in group_members(pid)
    ports = [endpoint.port for endpoint in broker.endpoints.values()]
    broker.stop()
    assert group_members(pid) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    broker.stop()  # idempotent


def test_amqtt_refuses_a_listener_it_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="amqtt: no mtls listener"):
        launch("amqtt", tmp_path, transports=("tcp", "mtls"))


def test_aedes_not_installed_is_one_line_naming_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEDES_DIR", str(tmp_path))
    (tmp_path / "broker.mjs").write_text("// no node_modules next to it\n")
    with pytest.raises(BrokerNotInstalled, match=r"aedes: npm package aedes is not installed in .* \(npm ci --prefix "):
        launch("aedes", tmp_path / "work")


def test_amqtt_not_installed_is_one_line_naming_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "amqtt" else real(name, *a))
    with pytest.raises(BrokerNotInstalled, match=r"amqtt: Python package amqtt is not installed .*\(pip install amqtt\)"):
        launch("amqtt", tmp_path)


SCENARIO = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: accepted
    title: A valid CONNECT is accepted
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - disconnect:
"""


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["in-process", "xdist"])
def test_a_target_that_is_not_installed_is_skipped_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("AEDES_DIR", str(pytester.path / "no-aedes-here"))
    (pytester.path / "scenarios" / "mqtt311").mkdir(parents=True)
    (pytester.path / "scenarios" / "mqtt311" / "connect.yaml").write_text(textwrap.dedent(SCENARIO))
    (pytester.path / "targets.yaml").write_text("default: aedes\ntargets:\n  aedes:\n    launch: aedes\n    profile: aedes\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", *workers)
    result.stdout.fnmatch_lines(["*SKIPPED*target aedes is not installed here: aedes: *broker.mjs not found*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped") == 1 and not outcomes.get("error") and not outcomes.get("failed"), outcomes
