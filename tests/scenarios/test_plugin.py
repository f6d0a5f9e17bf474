"""The pytest plugin end to end: collection, selection, verdicts and errors, against a real mosquitto."""

import re
import textwrap
from pathlib import Path

import pytest

from harness.preflight import PREFLIGHT_FAILED

pytest_plugins = ["pytester"]

GOOD = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: accepted
    title: A valid CONNECT is accepted
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - expect_nothing:
      - disconnect:
  - id: five-accepted
    title: A valid 5.0 CONNECT is accepted
    protocol: "5.0"
    refs: [MQTT-3.1.4-5]
    steps:
      - connected:
      - disconnect:
"""

WRONG_EXPECTATION = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: expects-refusal
    title: Expects a refusal the broker does not give
    refs: [MQTT-3.2.2-5]
    steps:
      - connect:
      - expect: {packet: connack, reason_code: 5}
"""


def _write(pytester: pytest.Pytester, files: dict[str, str], broker_url: str | None = None) -> None:
    for name, text in files.items():
        path = pytester.path / "scenarios" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    targets = "default: here\ntargets:\n  here:\n    url: " + (broker_url or "mqtt://127.0.0.1:1") + "\n"
    (pytester.path / "targets.yaml").write_text(targets, encoding="utf-8")


def test_each_scenario_is_an_item_with_node_id_and_markers(pytester, mosquitto_url):
    _write(pytester, {"mqtt311/connect.yaml": GOOD}, mosquitto_url)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["scenarios/mqtt311/connect.yaml::accepted", "scenarios/mqtt311/connect.yaml::five-accepted"])
    selected = pytester.runpytest("--collect-only", "-q", "-m", "mqtt5 and connect", "-p", "no:cacheprovider")
    selected.stdout.fnmatch_lines(["scenarios/mqtt311/connect.yaml::five-accepted", "*1/2 tests collected (1 deselected)*"])


def test_scenarios_pass_against_a_conformant_broker(pytester, mosquitto_url):
    _write(pytester, {"mqtt311/connect.yaml": GOOD}, mosquitto_url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_bad_file_is_one_collection_error_and_the_rest_still_run(pytester, mosquitto_url):
    bad = GOOD.replace("- expect_nothing:", "- expect_nothign:")
    _write(pytester, {"a/good.yaml": GOOD, "b/bad.yaml": bad}, mosquitto_url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    output = result.stdout.str()
    assert re.search(r"scenarios/b/bad\.yaml:\d+: scenarios/0/steps/1: .*expect_nothign", output), output
    assert "Traceback" not in output


def test_a_typo_in_a_packet_field_names_the_line(pytester, mosquitto_url):
    bad = GOOD.replace("- connected:\n      - expect_nothing:", "- connected: {clean_sesion: true}\n      - expect_nothing:")
    _write(pytester, {"bad.yaml": bad}, mosquitto_url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*scenarios/bad.yaml:8: connected: CONNECT has no field 'clean_sesion'*"])


def test_a_yaml_syntax_error_names_the_line(pytester, mosquitto_url):
    _write(pytester, {"broken.yaml": "scenarios:\n  - id: x\n    title: [unclosed\n"}, mosquitto_url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*scenarios/broken.yaml:*: YAML syntax*"])


def test_a_failure_names_step_expected_received_hex_and_statement(pytester, mosquitto_url):
    _write(pytester, {"wrong.yaml": WRONG_EXPECTATION}, mosquitto_url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*Expects a refusal the broker does not give [[]MQTT 3.1.1, target here, profile strict[]]*",
        "*step 2 (line 9) expect on main*",
        "*expected: CONNACK reason_code=5*",
        "*received: CONNACK*",
        "*20 02 00 00*",
        "*mismatch: reason_code: expected 5, got 0*",
        "*checks: MQTT-3.2.2-5*",
    ])


def test_a_recorded_deviation_is_an_expected_failure_and_must_keep_failing(pytester, mosquitto_url):
    _write(pytester, {"wrong.yaml": WRONG_EXPECTATION, "good.yaml": GOOD}, mosquitto_url)
    targets = (
        f"default: here\ntargets:\n  here:\n    url: {mosquitto_url}\n    deviations:\n"
        "      scenarios/wrong.yaml::expects-refusal: the broker accepts\n"
        "      scenarios/good.yaml::accepted: wrongly recorded\n"
    )
    (pytester.path / "targets.yaml").write_text(targets, encoding="utf-8")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rxX")
    result.assert_outcomes(xfailed=1, failed=1, passed=1)
    result.stdout.fnmatch_lines(["*XFAIL*expects-refusal*known deviation of here: the broker accepts*"])
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]]*wrongly recorded*"])


def test_unreachable_broker_is_said_once_by_the_preflight(pytester):
    _write(pytester, {"mqtt311/connect.yaml": GOOD})
    result = pytester.runpytest("-p", "no:cacheprovider", "--broker", "mqtt://127.0.0.1:1")
    assert result.ret == PREFLIGHT_FAILED
    result.stdout.fnmatch_lines(["preflight: target 127.0.0.1:1 is not usable: broker mqtt://127.0.0.1:1 unreachable: "
                                 "Connection refused", "*no tests ran*"])
    assert "Traceback" not in result.stdout.str() and result.stdout.str().count("Connection refused") == 1


def test_without_the_preflight_an_unreachable_broker_is_a_one_line_setup_error_per_scenario(pytester):
    _write(pytester, {"mqtt311/connect.yaml": GOOD})
    result = pytester.runpytest("-p", "no:cacheprovider", "--broker", "mqtt://127.0.0.1:1", "--no-preflight")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*setup error: broker mqtt://127.0.0.1:1 unreachable: Connection refused*"])
    assert "Traceback" not in result.stdout.str()


def test_keepalive_grace_comes_from_the_option_or_the_url(pytester):
    from harness.targets import target_from_url

    spec = target_from_url("mqtt://user:pw@broker.example:1883?keepalive_grace=6")
    assert spec.settings == {"keepalive_grace": 6.0} and spec.url == "mqtt://user:pw@broker.example:1883"
    assert target_from_url("ws://broker.example/mqtt?a=b").endpoints == {"ws": "ws://broker.example/mqtt?a=b"}
    _write(pytester, {"mqtt311/connect.yaml": GOOD})
    bad = pytester.runpytest("-p", "no:cacheprovider", "--broker", "mqtt://127.0.0.1:1?keepalive_grace=soon")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--broker: keepalive_grace='soon' in the URL is not a number*"])
    negative = pytester.runpytest("-p", "no:cacheprovider", "--keepalive-grace", "-1")
    assert negative.ret == pytest.ExitCode.USAGE_ERROR
    negative.stderr.fnmatch_lines(["*--keepalive-grace: expected seconds of 0 or more, got -1*"])


def test_unknown_target_is_a_usage_error(pytester):
    _write(pytester, {"mqtt311/connect.yaml": GOOD})
    result = pytester.runpytest("-p", "no:cacheprovider", "--target", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown target 'nope' (known: aedes, *here, mosquitto, *; read from built-in "
                                 "harness/suite/targets.yaml, *targets.yaml)*"])


def test_report_dir_gets_summary_junit_and_allure(pytester, mosquitto_url):
    _write(pytester, {"wrong.yaml": WRONG_EXPECTATION, "good.yaml": GOOD}, mosquitto_url)
    pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "out")
    summary = (pytester.path / "out" / "summary.md").read_text()
    assert "| `scenarios/good.yaml::accepted` A valid CONNECT is accepted | 3.1.1 | passed | MQTT-3.1.4-4 |" in summary
    assert "failed" in summary and "mismatch: reason_code: expected 5, got 0" in summary
    assert (pytester.path / "out" / "junit.xml").is_file()
    assert list((pytester.path / "out" / "allure-results").glob("*-result.json"))


def test_same_verdicts_with_two_workers(pytester, mosquitto_url):
    _write(pytester, {"wrong.yaml": WRONG_EXPECTATION, "good.yaml": GOOD}, mosquitto_url)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2, failed=1)


@pytest.fixture(scope="module")
def mosquitto_url(tmp_path_factory: pytest.TempPathFactory):
    launch = pytest.importorskip("harness.launch")
    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = launch.launch("mosquitto", tmp_path_factory.mktemp("mosquitto"))
    account = broker.accounts["default"]
    yield f"mqtt://{account.username}:{account.password}@{broker.host}:{broker.port}"
    broker.stop()
