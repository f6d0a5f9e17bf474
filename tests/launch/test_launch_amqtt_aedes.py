"""amqtt and aedes as the harness launches them: every listener, standard accounts, ACLs, a full stop,
and a missing installation that skips the target instead of failing it."""

# ruff: noqa: F811  (pytest fixtures imported from launch_fixtures are test parameters too)

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
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
from harness.launch import aedes as aedes_launcher
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


# The checkout's pinned aedes (tests/conftest.py also points AEDES_DIR at it): the tests may know the
# repository, the launcher may not.
TOOLS_AEDES = Path(__file__).resolve().parents[2] / "tools" / "aedes"


@pytest.fixture
def pinned_node_modules() -> Path:
    if not (TOOLS_AEDES / "node_modules" / "aedes").is_dir():
        pytest.skip("aedes is not installed in the checkout: npm ci --prefix tools/aedes")
    return TOOLS_AEDES / "node_modules"


def _serves(broker: RunningBroker, mqtt_client) -> None:
    try:
        creds = broker.accounts["default"]
        assert mqtt_client(broker, V311).connect(creds.username, creds.password, client_id="found") == 0
        assert broker.version == aedes_launcher.AEDES_VERSION
    finally:
        broker.stop()


def test_the_pinned_versions_are_the_checkouts(pinned_node_modules: Path) -> None:
    pinned = json.loads((TOOLS_AEDES / "package.json").read_text())["dependencies"]
    assert pinned == {"aedes": aedes_launcher.AEDES_VERSION, "ws": aedes_launcher.WS_VERSION}
    assert f"aedes@{pinned['aedes']} ws@{pinned['ws']}" in aedes_launcher.INSTALL


def test_the_server_script_ships_in_the_package() -> None:
    assert (Path(aedes_launcher.__file__).parent / aedes_launcher.SCRIPT).is_file()
    assert not (TOOLS_AEDES / "broker.mjs").exists()


def test_aedes_found_at_aedes_dir_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mqtt_client,
                                         pinned_node_modules: Path) -> None:
    monkeypatch.setenv("AEDES_DIR", str(pinned_node_modules.parent))
    monkeypatch.chdir(tmp_path)
    broker = launch("aedes", tmp_path / "work")
    workdir = next((tmp_path / "work").iterdir())
    assert (workdir / aedes_launcher.SCRIPT).is_file() and not (workdir / aedes_launcher.SCRIPT).is_symlink()
    assert (workdir / "node_modules").resolve() == pinned_node_modules.resolve()
    _serves(broker, mqtt_client)


def test_aedes_found_in_the_current_folders_node_modules_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                mqtt_client, pinned_node_modules: Path) -> None:
    monkeypatch.delenv("AEDES_DIR", raising=False)
    monkeypatch.setattr(aedes_launcher, "_global_root", lambda: pytest.fail("looked further than ./node_modules"))
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "node_modules").symlink_to(pinned_node_modules)  # as `npm install aedes ws` there leaves it
    monkeypatch.chdir(folder)
    broker = launch("aedes", tmp_path / "work", transports=("tcp", "ws"))
    assert set(broker.endpoints) == {"tcp", "ws"}
    _serves(broker, mqtt_client)


def test_aedes_found_in_the_global_npm_root_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   mqtt_client, pinned_node_modules: Path) -> None:
    monkeypatch.delenv("AEDES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(aedes_launcher, "_global_root", lambda: pinned_node_modules)  # as `npm install -g` leaves it
    _serves(launch("aedes", tmp_path / "work"), mqtt_client)


def test_the_global_npm_root_is_what_npm_says(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    said = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=True).stdout.strip()
    assert aedes_launcher._global_root() == Path(said)


def test_aedes_found_nowhere_is_one_line_naming_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AEDES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(aedes_launcher, "_global_root", lambda: tmp_path / "global" / "node_modules")
    with pytest.raises(BrokerNotInstalled) as raised:
        launch("aedes", tmp_path / "work")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("aedes: npm packages aedes and ws not found in $AEDES_DIR, ./node_modules or the global npm root")
    assert f"npm install aedes@{aedes_launcher.AEDES_VERSION} ws@{aedes_launcher.WS_VERSION}" in message
    assert "set AEDES_DIR" in message and " -g)" in message


def test_an_aedes_dir_without_the_packages_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 pinned_node_modules: Path) -> None:
    (tmp_path / "half" / "node_modules" / "aedes").mkdir(parents=True)
    (tmp_path / "half" / "node_modules" / "aedes" / "package.json").write_text('{"version": "1.2.0"}')
    monkeypatch.setenv("AEDES_DIR", str(tmp_path / "half"))
    (tmp_path / "node_modules").symlink_to(pinned_node_modules)
    monkeypatch.chdir(tmp_path)  # a complete ./node_modules is not used in its place
    with pytest.raises(BrokerNotInstalled, match=rf"^aedes: AEDES_DIR={re.escape(str(tmp_path / 'half'))} holds no "
                       rf"node_modules/ws \(npm install aedes@\S+ ws@\S+ --prefix .*half\)$"):
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
    result.stdout.fnmatch_lines(["*SKIPPED*target aedes is not installed here: aedes: AEDES_DIR=*no-aedes-here holds no node_modules/aedes and ws*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped") == 1 and not outcomes.get("error") and not outcomes.get("failed"), outcomes
