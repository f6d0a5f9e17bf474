"""Whole runs over TLS and WebSocket against a launched mosquitto: --transport, URLs, TLS verdicts."""

import textwrap
from pathlib import Path

import pytest

from harness.clients import Address, PacketReceived, RawClient, TlsOptions, open_transport
from harness.launch import ALL_LISTENERS, RunningBroker
from harness.wire import Connect, Version

pytest_plugins = ["pytester"]

SCENARIOS = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: accepted
    title: A valid CONNECT is accepted
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - expect_nothing:
      - disconnect:
  - id: ws-handshake
    title: mqtt subprotocol
    transports: [ws, wss]
    refs: [MQTT-6.0.0-4]
    steps:
      - open:
      - expect_websocket: {subprotocol: mqtt}
  - id: unknown-ca
    title: unknown CA
    transports: [tls]
    refs: []
    steps:
      - expect_tls_failure: {tls: {ca: foreign}, reason: unknown_ca}
  - id: wrongly-expected-reason
    title: a TLS failure with another reason than expected is a failure that says both
    transports: [tls]
    refs: []
    steps:
      - expect_tls_failure: {tls: {ca: foreign}, reason: expired}
"""


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> RunningBroker:
    from harness.launch import launch

    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = launch("mosquitto", tmp_path_factory.mktemp("mosquitto"), transports=ALL_LISTENERS)
    yield broker
    broker.stop()


def test_launched_mosquitto_serves_every_listener(mosquitto: RunningBroker) -> None:
    assert set(mosquitto.endpoints) == set(ALL_LISTENERS) and mosquitto.ca_file is not None
    account = mosquitto.accounts["default"]
    for name in ("tcp", "tls", "ws", "wss", "mtls"):
        served = mosquitto.endpoints[name]
        tls = None
        if served.transport in ("tls", "wss"):
            client_cert = {"cert_file": str(mosquitto.pki.client.cert), "key_file": str(mosquitto.pki.client.key)} \
                if name == "mtls" else {}
            tls = TlsOptions(ca_file=str(mosquitto.ca_file), **client_cert)  # type: ignore[union-attr]
        client = RawClient(open_transport(Address(served.transport, served.host, served.port, served.path or "/mqtt", tls), 3),
                           Version.V311)
        client.send_packet(Connect(client_id=f"listener{name.replace('-', '')}", username=account.username, password=account.password))
        event = client.next_event(3)
        assert isinstance(event, PacketReceived) and event.decoded.packet.reason_code == 0, name
        client.close()


def _write(pytester: pytest.Pytester, targets: str) -> None:
    path = pytester.path / "scenarios" / "s.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(SCENARIOS), encoding="utf-8")
    (pytester.path / "targets.yaml").write_text(textwrap.dedent(targets), encoding="utf-8")


def _remote(mosquitto: RunningBroker, ca: bool = True) -> str:
    account = mosquitto.accounts["default"]
    creds = f"{account.username}:{account.password}@"
    lines = ["default: m", "targets:", "  m:", "    endpoints:"]
    for name in ("tcp", "tls", "ws", "wss"):
        served = mosquitto.endpoints[name]
        lines.append(f"      {name}: {served.url.replace('://', '://' + creds)}")
    if ca:
        lines.append(f"    tls: {{ca_file: {mosquitto.ca_file}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_the_suite_runs_over_each_transport(pytester: pytest.Pytester, mosquitto: RunningBroker, transport: str) -> None:
    _write(pytester, _remote(mosquitto))
    result = pytester.runpytest("-p", "no:cacheprovider", "--transport", transport)
    # accepted over the chosen transport; ws-handshake and unknown-ca over their own; one wrong expectation
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*expected: the TLS handshake fails: reason='expired'*",
                                 "*received: cannot open mqtts://*: TLS handshake failed: certificate verify failed: unable to get local issuer*",
                                 "*mismatch: reason: expected 'expired', got 'unknown_ca'*"])


def test_transport_all_makes_one_item_per_endpoint(pytester: pytest.Pytester, mosquitto: RunningBroker) -> None:
    _write(pytester, _remote(mosquitto))
    result = pytester.runpytest("-p", "no:cacheprovider", "--transport", "all", "-v")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*s.yaml::accepted[[]wss[]] PASSED*", "*s.yaml::ws-handshake[[]ws[]] PASSED*"])


def test_without_the_ca_a_tls_run_is_a_clear_setup_error(pytester: pytest.Pytester, mosquitto: RunningBroker) -> None:
    _write(pytester, _remote(mosquitto, ca=False))
    # The preflight says it once, before any scenario (exit code 6) ...
    stopped = pytester.runpytest("-p", "no:cacheprovider", "--transport", "tls", "-k", "accepted")
    assert stopped.ret == 6
    stopped.stdout.fnmatch_lines(["preflight: target m is not usable: mqtts://127.0.0.1:*: TLS handshake failed: "
                                  "certificate verify failed: * [[]unknown_ca[]]"])
    # ... and without it, each scenario is a setup error saying why.
    result = pytester.runpytest("-p", "no:cacheprovider", "--transport", "tls", "-k", "accepted", "--no-preflight")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*setup error: step 1 (line *) connected: cannot open mqtts://127.0.0.1:*: "
                                 "TLS handshake failed: certificate verify failed: * [[]unknown_ca[]]*"])
    assert "Traceback" not in result.stdout.str()


def test_tls_options_on_the_command_line(pytester: pytest.Pytester, mosquitto: RunningBroker) -> None:
    _write(pytester, _remote(mosquitto, ca=False))
    account = mosquitto.accounts["default"]
    url = mosquitto.endpoints["tls"].url.replace("://", f"://{account.username}:{account.password}@")
    result = pytester.runpytest("-p", "no:cacheprovider", "--broker", url, "--tls-ca", str(mosquitto.ca_file), "-k", "accepted")
    result.assert_outcomes(passed=1)
    insecure = pytester.runpytest("-p", "no:cacheprovider", "--broker", url, "--tls-insecure", "-k", "accepted")
    insecure.assert_outcomes(passed=1, warnings=1)
    insecure.stdout.fnmatch_lines(["*TLS CERTIFICATE VERIFICATION IS OFF for tls*"])


def test_launched_target_offers_every_listener(pytester: pytest.Pytester) -> None:
    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    _write(pytester, "targets:\n  m: {launch: mosquitto}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--target", "m", "--transport", "wss")
    result.assert_outcomes(passed=3, failed=1)
