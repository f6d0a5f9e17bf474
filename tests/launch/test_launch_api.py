"""The launch() entry point, the standard accounts, and the reference-broker launcher."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from harness.launch import (
    LAUNCHERS,
    RESTRICTED_PREFIX,
    STANDARD_ACCOUNTS,
    Account,
    BrokerNotInstalled,
    Launcher,
    LaunchError,
    LaunchRequest,
    launch,
)
from harness.launch import reference as reference_launcher
from harness.launch.mosquitto import dynsec_config, hash_password
from harness.launch.process import group_members


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(
        LaunchError, match=rf"^unknown broker kind 'hivemq'; known kinds: {', '.join(sorted(LAUNCHERS))}$"
    ):
        launch("hivemq", tmp_path)
    assert {"mosquitto", "reference", "rabbitmq", "ejabberd"} <= set(LAUNCHERS)


def test_unknown_option_is_a_launch_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"^mosquitto: .*'colour'"):
        launch("mosquitto", tmp_path, colour="blue")


@pytest.mark.parametrize("kind", sorted(set(LAUNCHERS) - {"reference"}))
def test_an_account_without_acl_is_refused_before_anything_starts(kind: str, tmp_path: Path) -> None:
    # Refused by launch() itself: the same line whether or not the broker is installed here.
    with pytest.raises(LaunchError, match=rf"^{kind}: no ACL defined for account\(s\) guest \(known: default, restricted\)$"):
        launch(kind, tmp_path, accounts={**STANDARD_ACCOUNTS, "guest": Account("guest", "pw")})
    assert list(tmp_path.iterdir()) == []


def test_the_launcher_gets_one_checked_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[LaunchRequest, str]] = []

    def start(request: LaunchRequest, *, colour: str = "red") -> None:
        seen.append((request, colour))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(LAUNCHERS, "fake", Launcher(start, start_timeout=7.5, listeners=("tcp", "tls")))
    launch("fake", Path("work"), transports=["tcp", "tls"], colour="blue")
    launch("fake", Path("work"), port=1884, timeout=2.0)
    (first, colour), (second, _) = seen
    assert colour == "blue"
    assert first.workdir.is_absolute() and first.workdir.is_dir() and first.workdir.parent == tmp_path / "work"
    assert first.workdir != second.workdir  # a dir of its own per broker
    assert (first.timeout, first.port, first.transports) == (7.5, None, ("tcp", "tls"))  # the launcher's own start-up time
    assert (second.timeout, second.port, second.transports) == (2.0, 1884, ("tcp",))
    assert first.accounts == STANDARD_ACCOUNTS
    with pytest.raises(LaunchError, match=r"^fake: no ws listener \(it offers tcp, tls\)$"):
        launch("fake", Path("work"), transports=["tcp", "ws"])
    with pytest.raises(LaunchError, match=r"^fake: .*'size'"):
        launch("fake", Path("work"), size=3)
    assert len(seen) == 2


def test_a_missing_broker_is_said_before_its_dir_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LAUNCHERS, "fake", Launcher(lambda request: None, 1.0, installed=lambda: "fake: fakebroker not found"))
    with pytest.raises(BrokerNotInstalled, match=r"^fake: fakebroker not found$"):
        launch("fake", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_standard_accounts_and_secrets_kept_out_of_reprs() -> None:
    assert RESTRICTED_PREFIX == "acl/allowed"
    assert STANDARD_ACCOUNTS["default"].username == "harness"
    assert STANDARD_ACCOUNTS["restricted"].username == "restricted"
    assert "secret" not in repr(Account("u", "secret"))


def test_dynsec_password_hash_matches_mosquitto_ctrl() -> None:
    # Produced by `mosquitto_ctrl dynsec init d.json admin adminpw` (mosquitto 2.0.11).
    expected = "i5DvOeFpWf/xtyIQXlYGlchBBPe0+ccg21cmw0GQQ/MU1FPGF7hdWXQlUVmn+tSAChIaEo3WSLaFkV3R7Ckg4A=="
    fields = hash_password("adminpw", salt=base64.b64decode("1au3sD4Lsd2frkwo"), iterations=101)
    assert fields == {"password": expected, "salt": "1au3sD4Lsd2frkwo", "iterations": 101}


def test_dynsec_config_grants_per_account() -> None:
    config = dynsec_config(STANDARD_ACCOUNTS)
    json.dumps(config)  # serialisable as is
    roles = {role["rolename"]: {(a["acltype"], a["topic"]) for a in role["acls"]} for role in config["roles"]}
    assert ("subscribePattern", "#") in roles["harness-default"]
    assert ("subscribePattern", "$SYS/#") in roles["harness-default"]
    assert not any(topic.startswith("$CONTROL") for _, topic in roles["harness-default"])
    assert roles["harness-restricted"] >= {
        ("publishClientSend", "acl/allowed/#"),
        ("subscribePattern", "acl/allowed/#"),
    }
    assert all(topic == "acl/allowed/#" for _, topic in roles["harness-restricted"])
    assert config["defaultACLAccess"]["subscribe"] is False
    assert config["defaultACLAccess"]["publishClientSend"] is False


def test_reference_config_shape() -> None:
    config = reference_launcher.reference_config(4242, "strict", STANDARD_ACCOUNTS)
    assert config == {
        "listeners": [{"host": "127.0.0.1", "port": 4242, "transport": "tcp"}],
        "personality": "strict",
        "auth": {
            "allow_anonymous": False,
            "users": {"harness": "harness-secret", "restricted": "restricted-secret"},
        },
        "acl": [
            {"user": "harness", "allow": [{"topic": "#", "access": "readwrite"}]},
            {"user": "restricted", "allow": [{"topic": "acl/allowed/#", "access": "readwrite"}]},
        ],
    }


def test_reference_not_available_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_launcher, "_PACKAGE_ROOT", tmp_path / "harness")
    with pytest.raises(LaunchError, match=r"^reference: harness.broker is not available yet$"):
        launch("reference", tmp_path)


# Stands in for `python -m harness.broker`: reads the config it is given, listens, says ready.
FAKE_BROKER = textwrap.dedent(
    """
    import argparse, socket, sys, time, yaml
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    config = yaml.safe_load(open(parser.parse_args().config))
    listener = config["listeners"][0]
    sock = socket.socket()
    sock.bind((listener["host"], listener["port"]))
    sock.listen()
    print(f"reference broker ready on {listener['host']}:{listener['port']}", file=sys.stderr, flush=True)
    time.sleep(60)
    """
)


def test_reference_launches_the_module_with_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "checkout" / "harness"
    (package / "broker").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "broker" / "__init__.py").write_text("")
    (package / "broker" / "__main__.py").write_text(FAKE_BROKER)
    monkeypatch.setattr(reference_launcher, "_PACKAGE_ROOT", package)

    broker = launch("reference", tmp_path / "runs", personality="lenient")
    try:
        assert broker.name == "reference" and broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert "ready on 127.0.0.1" in broker.log_path.read_text()
        config = yaml.safe_load((broker.log_path.parent / "broker.yaml").read_text())
        assert config["listeners"] == [{"host": "127.0.0.1", "port": broker.port, "transport": "tcp"}]
        assert config["personality"] == "lenient"
        assert broker.accounts == STANDARD_ACCOUNTS
    finally:
        broker.stop()
    assert broker.pid is not None and group_members(broker.pid) == []
