"""A platform target fits the user's own tenant from its targets entry alone (docs/platforms.md).

The values that belong to one tenant, organisation or account are settings or accounts of the target,
never written in a scenario file: the Cumulocity tenant and two-way SSL (`client_id_from_cn`,
`certificate_cn`), the Watson organisation and device (`org`, `device_type`, `device_id`, account
`device`), the Itron tenant, the CloudPlugs enrolment model (account `enrollment`) and idle timeout.

For each: the platform's own scenario files resolve to the overridden values; run through pytest
against a launched reference broker whose targets entry overrides them, they pass, which they can only
do if the personality follows the setting as well (a broker keeping the profile's tenant would refuse
the scenarios' topics or logins); and a reached target without a platform account skips the
scenarios that need it, with the reason. Last, the example entries of the checkout's targets.yaml
are complete: loaded as written (uncommented), no vendor scenario they leave on lacks an account or
a setting.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.scenarios.model import Scenario, load_scenarios
from harness.scenarios.runner import ScenarioFailed, ScenarioRunner
from harness.scenarios.values import UnresolvableValue, Variables, references, resolve
from harness.targets import TargetSession, load_targets, target_from_table
from harness.targets.profiles import load_profile

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
VENDORS = ROOT / "scenarios" / "vendors"


class _Account:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password


def _scenario(relative: str, scenario_id: str) -> Scenario:
    return next(s for s in load_scenarios(VENDORS / relative) if s.id == scenario_id)


def _resolved(scenario: Scenario, profile: str, accounts: dict[str, Any] | None = None, **settings: Any) -> list[Any]:
    """Every step's arguments of the scenario, resolved with the profile's settings under `settings`."""
    variables = Variables(cid="c1", profile=profile, acl_allowed_prefix="acl/allowed",
                          accounts={"default": _Account("u", "p"), **(accounts or {})},
                          settings={**load_profile(profile).settings, **settings})
    out = []
    for step in scenario.steps:
        try:
            out.append(resolve(step.args, variables))
        except UnresolvableValue as exc:  # a value saved from a received packet (${pid}) is not known here
            if "unknown variable" not in str(exc):
                raise
    return out


# -- settings may refer to the scenario ---------------------------------------------------------------


def test_a_setting_may_hold_the_scenarios_client_id() -> None:
    variables = Variables(cid="c1", profile="watson-iot", accounts={}, acl_allowed_prefix="acl/allowed",
                          settings={"device_id": "${cid}", "fixed": "dev1", "loop": "${setting:loop}", "count": 3})
    assert resolve("d:o:T:${setting:device_id}", variables) == "d:o:T:c1"
    assert resolve("${setting:fixed}", variables) == "dev1" and resolve("${setting:count}", variables) == 3
    with pytest.raises(UnresolvableValue, match="refers to itself"):
        resolve("${setting:loop}", variables)


# -- the platforms' own accounts, as the launched reference broker gives them ------------------------------


def test_launched_platform_accounts_follow_the_settings() -> None:
    from harness.launch import STANDARD_ACCOUNTS
    from harness.launch.reference import platform_accounts

    def accounts(profile: str, **settings: Any) -> dict[str, tuple[str, str]]:
        personality = load_profile(profile).personality
        found = platform_accounts(personality, STANDARD_ACCOUNTS, {**load_profile(profile).settings, **settings})
        return {name: (a.username, a.password) for name, a in found.items()}

    assert accounts("watson-iot", org="acme42")["device"] == ("use-token-auth", "harness-device-token")
    assert accounts("watson-iot", org="acme42")["default"][0] == "a-acme42-harness"
    assert accounts("cumulocity", tenant="acme")["default"][0] == "acme/harness"
    assert accounts("cumulocity")["bootstrap"][0] == "management/devicebootstrap"
    assert "bootstrap" not in accounts("cumulocity-legacy")  # no device bootstrap in the legacy document
    assert accounts("cloudplugs", models={"mod-acme": "acme-pass"})["enrollment"] == ("mod-acme", "acme-pass")
    assert set(accounts("itron")) == {"default", "restricted"}


def test_client_id_from_cn_setting_is_a_yes_or_no(tmp_path: Path) -> None:
    from harness.launch import LaunchError, launch

    with pytest.raises(LaunchError, match="client_id_from_cn: expected true or false"):
        launch("reference", tmp_path, personality="cumulocity", personality_options={"client_id_from_cn": "yes"})


def test_watson_devices_log_in_with_their_token_in_the_organisation() -> None:
    from harness.broker.config import BrokerConfig
    from harness.broker.personalities.watson import DEVICE_USER, WatsonPersonality
    from harness.broker.personality import ClientInfo

    config = BrokerConfig()
    config.personality_options = {**load_profile("watson-iot").settings, "org": "acme42"}
    watson = WatsonPersonality(config)

    def refused(client_id: str, username: str | None) -> bool:
        return watson.check_connect(ClientInfo(client_id=client_id, version=4, username=username, password=b"t")) is not None

    assert not refused("d:acme42:sensor:dev1", DEVICE_USER)
    assert refused("d:acme42:sensor:dev1", "a-acme42-harness")  # an API key is an application's
    assert refused("d:org1:sensor:dev1", DEVICE_USER)  # another organisation's device
    assert not refused("plain-client", "a-acme42-harness")  # the generic suite's clients are left alone


# -- what the scenarios send and expect follows the settings --------------------------------------------


def test_itron_topics_use_the_tenant_setting() -> None:
    text = repr(_resolved(_scenario("itron/roles.yaml", "it-unauthorized-filter-suback-0x80"), "itron", tenant="acme"))
    assert "acme/read/#" in text and "acme/alert/#" in text and "itron/" not in text
    for scenario in load_scenarios(VENDORS / "itron" / "roles.yaml"):
        assert "itron/" not in repr(_resolved(scenario, "itron", tenant="acme")), scenario.id


def test_cumulocity_bootstrap_uses_the_tenant_and_the_bootstrap_account() -> None:
    scenario = _scenario("cumulocity/session.yaml", "c8y-bootstrap-credentials-on-s-dcr")
    assert "bootstrap" in scenario.accounts
    text = repr(_resolved(scenario, "cumulocity", tenant="acme", bootstrap_password="pw"))
    assert "70,acme,device_c1,pw" in text and "acme/device_c1" in text and "t100" not in text
    late = _scenario("cumulocity/session.yaml", "c8y-connack-5-mid-session-then-close")
    assert "d:broken-c1" in repr(_resolved(late, "cumulocity", broken_device_prefix="broken-"))


def test_cumulocity_certificate_login_uses_the_common_name_setting() -> None:
    scenario = _scenario("cumulocity/transports.yaml", "c8y-certificate-device-identifier-is-the-common-name")
    assert "c8y_certificate_login" in scenario.requires and scenario.accounts == {}
    assert "d:mydevice" in repr(_resolved(scenario, "cumulocity", certificate_cn="mydevice"))
    assert load_profile("cumulocity").capabilities["c8y_certificate_login"] is False  # a target turns it on


def test_watson_devices_use_the_organisation_device_and_device_account() -> None:
    for scenario in load_scenarios(VENDORS / "watson-iot" / "monitoring.yaml"):
        assert "device" in scenario.accounts, scenario.id
        text = repr(_resolved(scenario, "watson-iot", {"device": _Account("use-token-auth", "tok")},
                              org="abc123", device_type="sensor", device_id="dev1"))
        assert "d:abc123:sensor:dev1" in text and "iot-2/type/sensor/id/dev1/mon" in text, scenario.id
        assert "org1" not in text and "a:abc123:" in text, scenario.id  # the watchers are applications
    # The profile's device is a fresh one per scenario.
    first = _scenario("watson-iot/monitoring.yaml", "w-close-code-91-client-closed")
    assert "d:org1:T:c1" in repr(_resolved(first, "watson-iot", {"device": _Account("use-token-auth", "tok")}))
    retain = load_scenarios(VENDORS / "watson-iot" / "retain.yaml")[0]
    assert set(retain.accounts) == {"default"} and "a:abc123:" in repr(_resolved(retain, "watson-iot", org="abc123"))


def test_cloudplugs_enrolment_uses_the_enrollment_account() -> None:
    for scenario_id in ("cp-enroll-thing-success", "cp-enroll-wrong-pass-closes"):
        scenario = _scenario("cloudplugs/cloudplugs.yaml", scenario_id)
        assert scenario.accounts["enrollment"].credentials_line is not None
        text = repr(_resolved(scenario, "cloudplugs", {"enrollment": _Account("mod-acme", "acme-pass")}))
        assert "mod-acme/thing/" in text and "harness-" not in text
    success = repr(_resolved(_scenario("cloudplugs/cloudplugs.yaml", "cp-enroll-thing-success"), "cloudplugs",
                             {"enrollment": _Account("mod-acme", "acme-pass")}))
    assert "mod-acme/thing/acme-pass" in success


# -- a targets entry alone: launched reference brokers with overridden settings ---------------------------

# name -> (the entry, the vendor folders to run, scenario ids that must pass there)
OVERRIDES: dict[str, tuple[str, list[str], list[str]]] = {
    "c8y-acme": ("""
        launch: reference
        profile: cumulocity
        capabilities: {c8y_certificate_login: true}
        settings: {tenant: acme, bootstrap_password: acme-device-pw, broken_device_prefix: acmebroken,
                   client_id_from_cn: true}
        """, ["cumulocity"], ["c8y-bootstrap-credentials-on-s-dcr", "c8y-certificate-device-identifier-is-the-common-name",
                              "c8y-connack-5-mid-session-then-close", "c8y-empty-password-not-4"]),
    "itron-acme": ("""
        launch: reference
        profile: itron
        settings: {tenant: acme}
        """, ["itron"], ["it-alarm-consumer-granted-qos-1", "it-alarm-consumer-wildcard-inside-prefix",
                         "it-unauthorized-filter-suback-0x80", "it-consumer-publish-acknowledged-and-dropped"]),
    # One registered device for every scenario, as on the real service: the retained Disconnect a
    # scenario leaves is what the next one's watcher gets first.
    "watson-acme": ("""
        launch: reference
        profile: watson-iot
        settings: {org: acme42, device_type: sensor, device_id: dev1}
        """, ["watson-iot"], ["w-clientid-reuse-close-code-288", "w-mon-connect-retained", "w-close-code-91-client-closed",
                              "w-close-code-160-keepalive", "w-retained-event-delivered-live-not-stored",
                              "w-app-auth-api-key-of-the-organisation"]),
    "cp-acme": ("""
        launch: reference
        profile: cloudplugs
        settings: {idle_timeout: 2, models: {mod-acme: acme-pass}}
        """, ["cloudplugs"], ["cp-enroll-thing-success", "cp-enroll-wrong-pass-closes", "cp-idle-dropped-without-keepalive",
                              "cp-idle-dropped-despite-long-keepalive", "cp-data-json-relayed-with-id-and-at"]),
}


def _project(pytester: pytest.Pytester, folders: list[str], entries: dict[str, str]) -> None:
    for folder in folders:
        shutil.copytree(VENDORS / folder, pytester.path / "scenarios" / "vendors" / folder)
    body = "".join(f"  {name}:\n" + textwrap.indent(textwrap.dedent(entry).strip(), "    ") + "\n"
                   for name, entry in entries.items())
    (pytester.path / "targets.yaml").write_text("targets:\n" + body, encoding="utf-8")


@pytest.mark.parametrize("target", list(OVERRIDES))
def test_overridden_settings_pass_against_the_launched_personality(pytester: pytest.Pytester, target: str) -> None:
    entry, folders, must_pass = OVERRIDES[target]
    _project(pytester, folders, {target: entry})
    result = pytester.runpytest("scenarios", "--target", target, "-v", "-p", "no:cacheprovider", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert not outcomes.get("failed") and not outcomes.get("errors"), result.stdout.str()
    passed = set(re.findall(r"::([\w-]+)(?:\[[^\]]*\])? PASSED", result.stdout.str()))
    assert set(must_pass) <= passed, (sorted(set(must_pass) - passed), result.stdout.str())


def test_a_personality_keeping_another_tenant_refuses_the_scenarios() -> None:
    """The other half: scenarios written for tenant acme fail against a broker of the tenant itron, so
    the passes above come from the setting reaching both."""
    session = TargetSession(target_from_table(load_targets(), "reference-itron"), load_profile("itron"))
    try:
        endpoint = session.endpoint(session.default_endpoints()[0])
        endpoint = dataclasses.replace(endpoint, settings={**endpoint.settings, "tenant": "acme"})
        scenario = _scenario("itron/roles.yaml", "it-alarm-consumer-granted-qos-1")
        with pytest.raises(ScenarioFailed, match="0x80"):
            ScenarioRunner(scenario, endpoint, "psacme1", timeout=2.0).run()
    finally:
        session.stop()


def test_certificate_login_with_another_common_name_fails(pytester: pytest.Pytester) -> None:
    """client_id_from_cn reaches the broker: the run's certificate says harnessdevice, so a target
    claiming another common name is refused (CONNACK 5), as the platform refuses a wrong CN."""
    entry = OVERRIDES["c8y-acme"][0].replace("client_id_from_cn: true", "client_id_from_cn: true, certificate_cn: someoneelse")
    _project(pytester, ["cumulocity"], {"c8y-other-cn": entry})
    result = pytester.runpytest("scenarios", "--target", "c8y-other-cn", "-k", "certificate", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*reason_code: expected 0, got 5*"])


def test_reached_targets_without_a_platform_account_skip_with_the_reason(pytester: pytest.Pytester) -> None:
    entries = {
        "watson-no-device": "url: mqtt://127.0.0.1:1\nprofile: watson-iot\n"
                            "accounts: {default: {username: a-abc123-key, password: token}}\nsettings: {org: abc123}\n",
        "cp-no-enrollment": "url: mqtt://127.0.0.1:1\nprofile: cloudplugs\n"
                            "accounts: {default: {username: me@example.com, password: code}}\n",
        "c8y-no-bootstrap": "url: mqtt://127.0.0.1:1\nprofile: cumulocity\n"
                            "accounts: {default: {username: t1/me, password: pw}}\n",
    }
    _project(pytester, ["watson-iot", "cloudplugs", "cumulocity"], entries)
    checks = {
        "watson-no-device": ("scenarios/vendors/watson-iot/monitoring.yaml", "*account 'device'*no such account*"),
        "cp-no-enrollment": ("scenarios/vendors/cloudplugs/cloudplugs.yaml", "*account 'enrollment'*no such account*"),
        "c8y-no-bootstrap": ("scenarios/vendors/cumulocity/session.yaml", "*account 'bootstrap'*no such account*"),
    }
    for target, (path, reason) in checks.items():
        selection = {"watson-no-device": "w-", "cp-no-enrollment": "enroll", "c8y-no-bootstrap": "bootstrap"}[target]
        result = pytester.runpytest(path, "--target", target, "-k", selection, "-rs", "-p", "no:cacheprovider",
                                    "--no-preflight")  # nothing listens there: the skips come before any connection
        outcomes = result.parseoutcomes()
        assert outcomes.get("skipped") and not outcomes.get("passed") and not outcomes.get("failed"), result.stdout.str()
        result.stdout.fnmatch_lines([reason])


# -- the example entries of targets.yaml ---------------------------------------------------------------

ACCOUNT_CAPABILITIES = ("auth", "restricted_account")  # what a reached target's accounts give
EXAMPLES = ["cumulocity-cloud", "cumulocity-legacy-cloud", "watson-iot-cloud", "cloudplugs-cloud", "itron-staging"]


def _examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The checkout's targets.yaml with its commented platform examples uncommented (certificate files
    made up, every variable set)."""
    lines: list[str] = []
    inside = False
    for line in (ROOT / "targets.yaml").read_text(encoding="utf-8").splitlines():
        start = re.fullmatch(r"  # ([\w-]+):\s*", line)
        if start and start.group(1) in EXAMPLES:
            inside = True
            lines.append(f"  {start.group(1)}:")
        elif inside and line.startswith("  #   "):
            lines.append("  " + line[4:])  # "  #   field: ..." -> "    field: ..." (inner comments stay comments)
        else:
            inside = False
            lines.append(line)
    text = "\n".join(lines) + "\n"
    for key in ("cert_file", "key_file"):
        fake = tmp_path / f"{key}.pem"
        fake.write_text("not used\n", encoding="utf-8")
        text = re.sub(rf"{key}: \S+?([,}}])", rf"{key}: {fake}\1", text)
    for variable in set(re.findall(r"\{env: (\w+)\}", text)):
        monkeypatch.setenv(variable, f"value-of-{variable.lower()}")
    path = tmp_path / "targets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_entries_are_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = load_targets(_examples(tmp_path, monkeypatch))
    assert set(EXAMPLES) <= set(table.entries), sorted(table.entries)
    scenarios = [s for path in sorted(VENDORS.rglob("*.yaml")) for s in load_scenarios(path)]
    for name in EXAMPLES:
        raw = table.entries[name]
        for account, creds in raw["accounts"].items():  # secrets only ever from the environment
            assert isinstance(creds["password"], dict) and set(creds["password"]) == {"env"}, (name, account)
        spec = target_from_table(table, name)
        session = TargetSession(spec, load_profile(spec.profile))
        variables = Variables(cid="c1", profile=spec.profile, accounts=spec.accounts, acl_allowed_prefix="acl/allowed",
                              settings=session.settings)
        ran = 0
        for scenario in scenarios:
            capabilities = session.capabilities
            if any(not capabilities.get(need, False) for need in scenario.requires if need not in ACCOUNT_CAPABILITIES):
                continue  # another platform's scenario, or one the entry turns off on purpose
            reason = session.missing_capabilities(scenario)
            assert reason is None, (name, scenario.id, reason)  # nothing skipped for want of an account
            ran += 1
            for step in scenario.steps:
                for variable, arg in references(step.args):
                    if variable in ("setting", "user", "password"):
                        variables.lookup(variable, arg)  # raises if the entry lacks it
        assert ran, f"{name}: no vendor scenario runs"


def test_example_settings_name_the_users_own_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = load_targets(_examples(tmp_path, monkeypatch))
    settings = {name: target_from_table(table, name).settings for name in EXAMPLES}
    assert settings["cumulocity-cloud"]["tenant"] != load_profile("cumulocity").settings["tenant"]
    assert settings["cumulocity-cloud"]["certificate_cn"] != load_profile("cumulocity").settings["certificate_cn"]
    assert settings["itron-staging"]["tenant"] != load_profile("itron").settings["tenant"]
    watson = settings["watson-iot-cloud"]
    assert watson["org"] != "org1" and "${" not in watson["device_id"] and watson["device_type"]
    assert "device" in target_from_table(table, "watson-iot-cloud").accounts
    assert "enrollment" in target_from_table(table, "cloudplugs-cloud").accounts
    assert settings["cloudplugs-cloud"]["idle_timeout"] == 300
