"""Endpoint URLs, targets.yaml endpoints and TLS options, --transport choices and the items they make."""

import textwrap
from pathlib import Path

import pytest

from harness.clients import Address, TlsMaterial, TlsOptions, apply_tls_overrides, parse_address
from harness.errors import HarnessError
from harness.scenarios.model import load_scenarios
from harness.targets import TargetSession, target_from_file, target_from_url
from harness.targets.profiles import load_profile


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://h", Address("tcp", "h", 1883)),
        ("mqtts://h", Address("tls", "h", 8883, tls=TlsOptions())),
        ("ssl://h:1", Address("tls", "h", 1, tls=TlsOptions())),
        ("ws://h", Address("ws", "h", 80, "/mqtt")),
        ("wss://h", Address("wss", "h", 443, "/mqtt", TlsOptions())),
        ("wss://u:p@h:8443/custom?x=1", Address("wss", "h", 8443, "/custom?x=1", TlsOptions())),
    ],
)
def test_urls_give_transport_port_and_path(url: str, expected: Address) -> None:
    assert parse_address(url) == expected


def test_address_url_is_readable() -> None:
    assert Address("wss", "h", 443, "/mqtt").url == "wss://h:443/mqtt"
    assert Address("tls", "::1", 8883).url == "mqtts://[::1]:8883"


@pytest.mark.parametrize(("url", "words"), [("http://h", "unsupported URL scheme 'http'"), ("mqtt://", "no host"),
                                            ("mqtt://h:99999", "bad port")])
def test_bad_urls_say_what_is_wrong(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_address(url)


def test_broker_url_scheme_picks_the_endpoint() -> None:
    spec = target_from_url("mqtts://user:pw@broker.example:8883")
    assert spec.endpoints == {"tls": "mqtts://user:pw@broker.example:8883"}
    assert spec.accounts["default"].username == "user"


def _targets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_several_endpoints_and_tls_options_from_targets_yaml(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    path = _targets(tmp_path, f"""
        targets:
          multi:
            endpoints:
              tcp: mqtt://b.example:1883
              tls: mqtts://b.example:8883
              wss: {{url: "wss://b.example/mqtt", tls: {{server_name: b.example}}}}
            tls: {{ca_file: {ca}, min_version: "1.2"}}
        """)
    spec = target_from_file(path, "multi")
    assert list(spec.endpoints) == ["tcp", "tls", "wss"]
    assert spec.tls_options("tls") == TlsOptions(ca_file=str(ca.resolve()), min_version="1.2")
    assert spec.tls_options("wss").server_name == "b.example"
    session = TargetSession(spec, load_profile("strict"))
    assert session.endpoint_names() == ["tcp", "tls", "wss"]
    assert session.choose_endpoints(None) == ["tcp"]
    assert session.choose_endpoints("wss,tls") == ["wss", "tls"]
    assert session.choose_endpoints("all") == ["tcp", "tls", "wss"]
    with pytest.raises(HarnessError, match="has no such endpoint"):
        session.choose_endpoints("ws")


@pytest.mark.parametrize(
    ("tls", "words"),
    [("{cafile: x}", "unknown field"), ("{ca_file: /no/such.pem}", "not found"), ('{min_version: "1.9"}', "not a TLS version"),
     ("{insecure: yes-please}", "true or false")],
)
def test_bad_tls_options_are_one_line(tmp_path: Path, tls: str, words: str) -> None:
    path = _targets(tmp_path, f"targets:\n  t:\n    url: mqtts://h\n    tls: {tls}\n")
    with pytest.raises(HarnessError, match=words):
        target_from_file(path, "t")


def test_url_and_endpoints_are_exclusive(tmp_path: Path) -> None:
    path = _targets(tmp_path, "targets:\n  t:\n    url: mqtt://h\n    endpoints: {tcp: mqtt://h}\n")
    with pytest.raises(HarnessError, match="exactly one of"):
        target_from_file(path, "t")


def test_insecure_endpoints_are_listed_for_the_header(tmp_path: Path) -> None:
    path = _targets(tmp_path, "targets:\n  t:\n    endpoints: {tcp: 'mqtt://h', tls: 'mqtts://h'}\n    tls: {insecure: true}\n")
    session = TargetSession(target_from_file(path, "t"), load_profile("strict"))
    assert session.insecure_endpoints() == ["tls"]
    assert any("VERIFICATION IS OFF" in line for line in session.header_lines())


SCENARIOS = """
defaults: {protocol: "3.1.1", area: x}
scenarios:
  - {id: anywhere, title: t, refs: [], steps: [{connected: }]}
  - {id: ws-only, title: t, refs: [], transports: [ws, wss], steps: [{connected: }]}
  - {id: both-kinds, title: t, refs: [], clients: [raw, paho], steps: [{connected: }]}
  - {id: needs-expired, title: t, refs: [], transports: [tls], steps: [{expect_tls_failure: {endpoint: tls-expired, reason: expired}}]}
"""


def test_items_per_endpoint_and_client_kind(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(SCENARIOS)
    scenarios = {s.id: s for s in load_scenarios(file)}
    path = _targets(tmp_path, "targets:\n  t:\n    endpoints: {tcp: 'mqtt://h', tls: 'mqtts://h', ws: 'ws://h'}\n")
    session = TargetSession(target_from_file(path, "t"), load_profile("strict"))
    session.choose_endpoints("tcp")
    assert session.variants(scenarios["anywhere"]) == [("tcp", "raw", "")]
    assert session.variants(scenarios["ws-only"]) == [("ws", "raw", "")]  # about ws: runs over ws anyway
    assert session.variants(scenarios["both-kinds"]) == [("tcp", "raw", "[raw]"), ("tcp", "paho", "[paho]")]
    session.choose_endpoints("all")
    assert [v[2] for v in session.variants(scenarios["anywhere"])] == ["[tcp]", "[tls]", "[ws]"]
    assert session.variants(scenarios["ws-only"]) == [("ws", "raw", "[ws]")]
    assert session.variants(scenarios["both-kinds"])[-1] == ("ws", "paho", "[ws-paho]")
    assert "no 'tls-expired' endpoint" in (session.missing_for(scenarios["needs-expired"], "tls") or "")


def test_a_scenario_about_a_transport_the_target_lacks_is_skipped(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(SCENARIOS)
    scenario = {s.id: s for s in load_scenarios(file)}["ws-only"]
    session = TargetSession(target_from_url("mqtt://h:1"), load_profile("strict"))
    session.choose_endpoints(None)
    assert session.variants(scenario) == [(None, "raw", "")]
    assert "is about ws or wss" in (session.missing_for(scenario, None) or "")


def test_tls_overrides_pick_the_named_material() -> None:
    base = Address("tls", "h", 8883, tls=TlsOptions(ca_file="ca.pem", cert_file="c.pem", key_file="c.key"))
    material = TlsMaterial(ca_file="ca.pem", client_cert="c.pem", client_key="c.key", foreign_ca="f.pem",
                           foreign_cert="fc.pem", foreign_key="fc.key")
    changed = apply_tls_overrides(base, {"ca": "foreign", "client_cert": "none", "max_version": "1.2"}, material)
    assert changed.tls == TlsOptions(ca_file="f.pem", max_version="1.2")
    assert apply_tls_overrides(base, {"client_cert": "foreign"}, material).tls.cert_file == "fc.pem"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="need a TLS endpoint"):
        apply_tls_overrides(Address("tcp", "h", 1), {"ca": "foreign"}, material)
    with pytest.raises(ValueError, match="the target has no client certificate"):
        apply_tls_overrides(base, {"client_cert": "target"}, TlsMaterial())
