"""Accounts of a target: a reached target without credentials connects anonymously, and a scenario
that needs credentials or an account the target has not got is skipped with the reason."""

import socket
import textwrap
import threading
from pathlib import Path

import pytest

from harness.scenarios.model import AccountUse, load_scenarios
from harness.scenarios.runner import ScenarioRunner
from harness.scenarios.values import UnresolvableValue, Variables, resolve
from harness.targets import ANONYMOUS, Account, TargetSession, target_from_file, target_from_url
from harness.targets.profiles import load_profile
from harness.wire import Connect, Decoder, Version

SCENARIOS = """
defaults: {protocol: "3.1.1", area: t}
scenarios:
  - id: plain
    title: t
    refs: []
    steps:
      - connected:
      - disconnect:
  - id: writes-the-user-name
    title: t
    refs: []
    steps:
      - open:
      - connect: {username: "${user}", password: null, connect_flags: 0xC2}
  - id: restricted-login
    title: t
    refs: []
    steps:
      - connected: {on: watch}
      - connected: {on: limited, account: restricted}
      - send: {on: limited, packet: publish, topic: "${user:restricted}/x", payload: ""}
  - id: no-account
    title: t
    refs: []
    steps:
      - connect: {account: none}
      - expect_tls_failure: {reason: unknown_ca}
  - id: needs-auth
    title: t
    refs: []
    requires: [auth]
    steps:
      - connected:
"""


@pytest.fixture
def scenarios(tmp_path: Path) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SCENARIOS), encoding="utf-8")
    return {s.id: s for s in load_scenarios(path)}


def _targets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize("url", ["mqtt://127.0.0.1:1883", "mqtts://broker.example:8883", "wss://broker.example/mqtt"])
def test_a_url_without_user_info_has_an_anonymous_default_account(url: str) -> None:
    spec = target_from_url(url)
    assert spec.accounts == {"default": ANONYMOUS} and spec.accounts["default"].anonymous
    assert spec.capabilities == {"auth": False, "restricted_account": False}


def test_a_url_with_user_info_logs_in_with_it() -> None:
    spec = target_from_url("mqtt://alice:s%40cret@h:1883")
    assert spec.accounts == {"default": Account("alice", "s@cret")}
    assert spec.capabilities["auth"] is True


def test_targets_yaml_entries_without_a_default_account_are_anonymous(tmp_path: Path) -> None:
    path = _targets(tmp_path, """
        targets:
          bare: {url: "mqtt://h:1883"}
          only-restricted:
            endpoints: {tcp: "mqtt://h:1883"}
            accounts: {restricted: {username: ro, password: pw}}
          with-login:
            url: "mqtt://h:1883"
            accounts: {default: {username: u, password: p}}
          launched: {launch: mosquitto}
        """)
    bare = target_from_file(path, "bare")
    assert bare.accounts == {"default": ANONYMOUS} and bare.capabilities["auth"] is False
    restricted = target_from_file(path, "only-restricted")
    assert restricted.accounts["default"] is ANONYMOUS
    assert restricted.capabilities == {"auth": False, "restricted_account": True}
    assert target_from_file(path, "with-login").capabilities["auth"] is True
    assert target_from_file(path, "launched").accounts == {}  # the launched broker brings its accounts


def test_a_scenario_names_the_accounts_its_steps_use(scenarios: dict) -> None:
    assert scenarios["plain"].accounts == {"default": AccountUse(line=8)}
    assert scenarios["writes-the-user-name"].accounts == {"default": AccountUse(line=15, credentials_line=15)}
    assert scenarios["restricted-login"].accounts == {"default": AccountUse(line=20),
                                                      "restricted": AccountUse(line=21, credentials_line=22)}
    # `account: none` logs in with nothing; a TLS failure step still sends a CONNECT with the default account
    assert scenarios["no-account"].accounts == {"default": AccountUse(line=28)}


def test_an_anonymous_url_skips_what_needs_credentials_and_runs_the_rest(scenarios: dict) -> None:
    session = TargetSession(target_from_url("mqtt://127.0.0.1:1883"), load_profile("strict"))
    assert session.missing_capabilities(scenarios["plain"]) is None
    assert session.missing_capabilities(scenarios["no-account"]) is None
    assert session.missing_capabilities(scenarios["writes-the-user-name"]) == (
        "the scenario writes the user name or password of account 'default' (line 15); target 127.0.0.1:1883 has "
        "only an anonymous default account: the URL has no user info, as in mqtt://user:password@host:port")
    assert session.missing_capabilities(scenarios["restricted-login"]) == (
        "the scenario connects with account 'restricted' (line 21); target 127.0.0.1:1883 has no such account "
        "(it has: default; see targets.yaml accounts)")
    assert session.missing_capabilities(scenarios["needs-auth"]) == (
        "target 127.0.0.1:1883 does not offer: auth (its default account is anonymous: the URL has no user info, "
        "as in mqtt://user:password@host:port)")


def test_with_credentials_or_a_launched_broker_nothing_is_skipped_for_accounts(tmp_path: Path, scenarios: dict) -> None:
    path = _targets(tmp_path, """
        targets:
          both:
            url: "mqtt://u:p@h:1883"
            accounts: {restricted: {username: ro, password: pw}}
          launched: {launch: mosquitto}
        """)
    for name in ("both", "launched"):
        session = TargetSession(target_from_file(path, name), load_profile("strict"))
        assert all(session.missing_accounts(s) is None for s in scenarios.values()), name


def test_an_explicit_capability_is_not_explained_by_the_accounts(tmp_path: Path, scenarios: dict) -> None:
    path = _targets(tmp_path, "targets:\n  t:\n    url: 'mqtt://u:p@h:1883'\n    capabilities: {auth: false}\n")
    session = TargetSession(target_from_file(path, "t"), load_profile("strict"))
    assert session.missing_capabilities(scenarios["needs-auth"]) == "target t does not offer: auth"


def test_the_credentials_of_an_anonymous_account_do_not_resolve() -> None:
    variables = Variables(cid="c", profile="strict", accounts={"default": ANONYMOUS}, acl_allowed_prefix="acl/allowed")
    with pytest.raises(UnresolvableValue, match=r"\$\{password\}: the target's default account is anonymous"):
        resolve("${password}", variables)


class _ConnackServer:
    """Answers CONNACK 0 on each connection and keeps what the first one that sends anything sent, up to
    its close (the target's reachability check connects first and sends nothing)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.received:
            conn, _ = self.server.accept()
            with conn:
                conn.settimeout(5)
                while data := conn.recv(4096):
                    if not self.received:
                        conn.sendall(bytes.fromhex("20 02 00 00"))
                    self.received += data


def test_the_runner_connects_anonymously_with_no_user_name_or_password(scenarios: dict) -> None:
    server = _ConnackServer()
    session = TargetSession(target_from_url(f"mqtt://127.0.0.1:{server.port}"), load_profile("strict"))
    try:
        ScenarioRunner(scenarios["plain"], session.endpoint(), "anon1", timeout=2.0).run()
        server.thread.join(5)
    finally:
        server.server.close()
        session.stop()
    connect = Decoder(Version.V311, role="server").feed(server.received)[0].packet
    assert isinstance(connect, Connect) and connect.client_id == "anon1"
    assert connect.username is None and connect.password is None
    assert server.received[9] & 0xC0 == 0  # connect flags: neither User Name nor Password flag
