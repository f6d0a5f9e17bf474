"""A run's Allure results: one result per scenario with labels, links, severity, per-step packets and pcaps."""

import json
import subprocess

import pytest
from report_helpers import FAILING, PASSING, allure_results, labels, need, url_target, write_tree

pytest_plugins = ["pytester"]

TIMING_OUT = """
defaults: {protocol: "3.1.1", area: publish}
scenarios:
  - id: waits-for-a-publish
    title: Waits for a PUBLISH that never comes
    refs: [MQTT-3.3.4-1]
    steps:
      - connected:
      - expect: {packet: publish, timeout: 0.2}
"""


@pytest.fixture
def run(pytester, reference_url, broker_env):
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING, "mqtt311/wrong.yaml": FAILING, "mqtt311/slow.yaml": TIMING_OUT},
               url_target("ref", reference_url))
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "out")
    result.assert_outcomes(passed=1, failed=2)
    return pytester.path / "out"


def test_each_scenario_has_title_description_labels_links_and_severity(run) -> None:
    results = allure_results(run / "allure-results")
    failed = results["Expects a refusal the broker does not give"]
    assert failed["status"] == "failed"
    assert "The broker accepts; this scenario wrongly expects CONNACK 5." in failed["description"]
    assert "MQTT-3.2.2-5" in failed["description"] and "scenarios/mqtt311/wrong.yaml::expects-refusal" in failed["description"]
    found = labels(failed)
    assert found["epic"] == ["MQTT 3.1.1"] and found["feature"] == ["connect"] and found["story"] == ["MQTT-3.2.2-5"]
    assert found["parentSuite"] == ["ref"] and found["suite"] == ["MQTT 3.1.1"] and found["subSuite"] == ["connect"]
    assert found["broker"] == ["ref"] and found["profile"] == ["strict"] and found["protocol"] == ["3.1.1"]
    assert found["transport"] == ["tcp"] and found["client"] == ["raw"]
    assert found["severity"] == ["critical"]  # an OASIS numbered statement is a MUST
    (link,) = failed["links"]
    assert link["url"] == "https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#:~:text=%5BMQTT%2D3.2.2%2D5%5D"
    assert link["name"].startswith("MQTT-3.2.2-5 (MQTT 3.1.1 §3.2.2")
    assert results["A valid CONNECT is accepted"]["status"] == "passed"


def test_a_passing_scenario_shows_its_packets_inline_as_step_parameters(run) -> None:
    passed = allure_results(run / "allure-results")["A valid CONNECT is accepted"]
    steps = passed["steps"]
    assert [s["name"] for s in steps] == ["1. connected on main", "2. expect_nothing on main", "3. disconnect on main"]
    parameters = {p["name"]: p["value"] for p in steps[0]["parameters"]}
    assert parameters["sent 1"].startswith("CONNECT client_id=") and "password=b'*****" in parameters["sent 1"]
    assert parameters["received 1"] == "CONNACK session_present=0 reason_code=0x00 (Connection Accepted)\n20 02 00 00"
    assert all("attachments" not in s or not s["attachments"] for s in steps)


def test_the_failing_step_holds_the_failure_and_the_decoded_packets_in_hex(run) -> None:
    failed = allure_results(run / "allure-results")["Expects a refusal the broker does not give"]
    assert "step 2 (line 10) expect on main" in failed["statusDetails"]["message"]
    steps = failed["steps"]
    assert [s["status"] for s in steps] == ["passed", "failed", "skipped"]  # the third was not reached
    assert steps[0]["name"] == "1. connect on main" and steps[1]["name"].startswith("2. expect on main")
    assert "mismatch: reason_code: expected 5, got 0" in steps[1]["statusDetails"]["message"]
    assert steps[0]["start"] <= steps[1]["start"] <= steps[1]["stop"]

    def attachment(step, name):
        (found,) = [a for a in step["attachments"] if a["name"] == name]
        return (run / "allure-results" / found["source"]).read_text()

    sent = attachment(steps[0], "sent: CONNECT")
    assert sent.startswith("CONNECT client_id=") and "00000000  10 " in sent
    received = attachment(steps[1], "received: CONNACK")
    assert received.splitlines()[0] == "CONNACK session_present=0 reason_code=0x00 (Connection Accepted)"
    assert "00000000  20 02 00 00" in received


def test_each_connection_is_a_pcap_that_tshark_decodes_as_mqtt(run) -> None:
    tshark = need("tshark")
    failed = allure_results(run / "allure-results")["Expects a refusal the broker does not give"]
    (pcap,) = [a for a in failed["attachments"] if a["type"] == "application/vnd.tcpdump.pcap"]
    assert pcap["name"].startswith("main (127.0.0.1:")
    out = subprocess.run([tshark, "-r", str(run / "allure-results" / pcap["source"]), "-Y", "mqtt", "-T", "fields",
                          "-e", "mqtt.msgtype", "-e", "mqtt.passwd", "-e", "mqtt.conack.val"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert [r[0] for r in rows] == ["1", "2"]  # CONNECT, CONNACK (accepted: the failure); DISCONNECT was not reached
    assert set(rows[0][1]) == {"*"} and rows[1][2] == "0"
    # A failing scenario's captures are also kept beside the report for tshark without the HTML.
    assert sorted(p.name for p in (run / "pcap").iterdir()) == [
        "scenarios_mqtt311_slow__waits-for-a-publish__main.pcap", "scenarios_mqtt311_wrong__expects-refusal__main.pcap"]


def test_failures_are_categorised_in_allure_and_in_results_json(run) -> None:
    categories = json.loads((run / "allure-results" / "categories.json").read_text())
    names = {c["name"] for c in categories}
    assert names == {"broker violates the specification", "broker deviates as its profile documents",
                     "harness or setup error", "timeout", "baselined scenario now passes",
                     "broker deviates in some runs, as its baseline documents"}
    results = json.loads((run / "results.json").read_text())["results"]
    assert results["scenarios/mqtt311/wrong.yaml::expects-refusal"]["category"] == "broker violates the specification"
    assert results["scenarios/mqtt311/slow.yaml::waits-for-a-publish"]["category"] == "timeout"
    assert results["scenarios/mqtt311/connect.yaml::accepted"]["category"] == ""
    assert results["scenarios/mqtt311/slow.yaml::waits-for-a-publish"]["area"] == "publish"


def test_environment_names_target_version_and_url_without_credentials(pytester, reference_broker, broker_env) -> None:
    url = f"mqtt://harness:{reference_broker.accounts['default'].password}@{reference_broker.host}:{reference_broker.port}"
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING}, url_target("ref", url))
    pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "out").assert_outcomes(passed=1)
    properties = (pytester.path / "out" / "allure-results" / "environment.properties").read_text().splitlines()
    assert "target=ref" in properties
    assert f"target.url=mqtt://{reference_broker.host}:{reference_broker.port}" in properties
    assert "target.profile=strict" in properties and any(p.startswith("target.version=") for p in properties)


def test_a_launched_target_reports_its_version(pytester) -> None:
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING}, "targets:\n  ref:\n    launch: reference\n")
    pytester.runpytest("-p", "no:cacheprovider", "--target", "ref", "--report-dir", "out").assert_outcomes(passed=1)
    properties = (pytester.path / "out" / "allure-results" / "environment.properties").read_text().splitlines()
    version = next(p for p in properties if p.startswith("target.version="))
    assert version != "target.version=not reported"
    assert any(p.startswith("target.url=mqtt://127.0.0.1:") and "launched by the harness: reference" in p for p in properties)


def test_without_a_report_dir_no_allure_or_pcap_work_is_done(pytester, reference_url, broker_env) -> None:
    write_tree(pytester, {"mqtt311/wrong.yaml": FAILING}, url_target("ref", reference_url))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)
    assert not list(pytester.path.rglob("*.pcap")) and not list(pytester.path.rglob("*-result.json"))
