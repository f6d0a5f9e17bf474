"""The release gate: a baseline per target, and the rules that make a run fail."""

import json
import re
import xml.etree.ElementTree as ET

import pytest
from report_helpers import FAILING, PASSING, allure_results, write_tree

from harness.report.categories import ALLURE_CATEGORIES, INTERMITTENT

pytest_plugins = ["pytester"]

SKIPPED = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: needs-a-restricted-account
    title: Needs what the target does not offer
    refs: [MQTT-3.1.4-4]
    requires: [restricted_account]
    steps:
      - connected: {account: restricted}
"""


def targets(url: str, deviations: str = "") -> str:
    return f"default: gate\ntargets:\n  gate:\n    url: {url}\n" + deviations


def baseline(pytester: pytest.Pytester, entries: dict[str, str], name: str = "gate") -> None:
    path = pytester.path / "baselines" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"target: {name}\nexpected_failures:\n" + "".join(f"  {k}: {v}\n" for k, v in entries.items()))


@pytest.fixture
def tree(pytester, login_url):
    write_tree(pytester, {"mqtt311/good.yaml": PASSING, "mqtt311/wrong.yaml": FAILING}, targets(login_url))
    return pytester


def test_a_failure_not_in_the_baseline_fails_the_run(tree) -> None:
    baseline(tree, {})
    result = tree.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_failure_in_the_baseline_keeps_the_run_green_with_its_reason(tree) -> None:
    baseline(tree, {"scenarios/mqtt311/wrong.yaml::expects-refusal": "the broker accepts, as documented"})
    result = tree.runpytest("-p", "no:cacheprovider", "-rx")
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*XFAIL*expects-refusal*known deviation of gate: the broker accepts, as documented*"])


def test_a_baselined_scenario_that_passes_fails_the_run_and_says_to_shrink_the_baseline(tree) -> None:
    baseline(tree, {"scenarios/mqtt311/wrong.yaml::expects-refusal": "fails", "scenarios/mqtt311/good.yaml::accepted": "stale"})
    result = tree.runpytest("-p", "no:cacheprovider", "--report-dir", "out")
    result.assert_outcomes(xfailed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    passed_anyway = allure_results(tree.path / "out" / "allure-results")["A valid CONNECT is accepted"]
    assert passed_anyway["status"] == "failed"
    assert "[XPASS(strict)]" in passed_anyway["statusDetails"]["message"] and "remove the entry" in passed_anyway["statusDetails"]["message"]
    results = json.loads((tree.path / "out" / "results.json").read_text())["results"]
    assert results["scenarios/mqtt311/good.yaml::accepted"]["category"] == "baselined scenario now passes"
    assert results["scenarios/mqtt311/wrong.yaml::expects-refusal"]["category"] == "broker deviates as its profile documents"


def test_an_intermittent_entry_may_pass_or_fail_and_the_run_stays_green(tree) -> None:
    (tree.path / "baselines").mkdir()
    (tree.path / "baselines" / "gate.yaml").write_text(
        "target: gate\nintermittent_failures:\n"
        "  scenarios/mqtt311/wrong.yaml::expects-refusal: a race in the broker, 1 run in 4\n"
        "  scenarios/mqtt311/good.yaml::accepted: a race in the broker, 1 run in 5\n")
    result = tree.runpytest("-p", "no:cacheprovider", "--report-dir", "out")
    result.assert_outcomes(xfailed=1, xpassed=1)
    assert result.ret == pytest.ExitCode.OK
    results = json.loads((tree.path / "out" / "results.json").read_text())["results"]
    failed_this_time = results["scenarios/mqtt311/wrong.yaml::expects-refusal"]
    assert failed_this_time["category"] == "broker deviates in some runs, as its baseline documents"
    assert failed_this_time["detail"] == "known intermittent deviation of gate: a race in the broker, 1 run in 4"
    assert results["scenarios/mqtt311/good.yaml::accepted"]["category"] == ""  # it passed, which the entry allows
    allure = allure_results(tree.path / "out" / "allure-results")["Expects a refusal the broker does not give"]
    message = allure["statusDetails"]["message"]
    # Allure files it under the first category whose status and regex match (categories.json's rule).
    category = next(c["name"] for c in ALLURE_CATEGORIES
                    if allure["status"] in c["matchedStatuses"] and re.match(c.get("messageRegex", ".*"), message))
    assert category == INTERMITTENT


def test_an_entry_both_expected_and_intermittent_is_a_usage_error(tree) -> None:
    (tree.path / "baselines").mkdir()
    (tree.path / "baselines" / "gate.yaml").write_text(
        "target: gate\nexpected_failures:\n  scenarios/mqtt311/wrong.yaml::expects-refusal: always\n"
        "intermittent_failures:\n  scenarios/mqtt311/wrong.yaml::expects-refusal: sometimes\n")
    result = tree.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baselines/gate.yaml: listed as both expected and intermittent: "
                                 "scenarios/mqtt311/wrong.yaml::expects-refusal"])


def test_baseline_entries_that_name_no_scenario_fail_the_run_whatever_was_selected(tree) -> None:
    baseline(tree, {"scenarios/mqtt311/wrong.yaml::expects-refusal": "fails",
                    "scenarios/mqtt311/wrong.yaml::renamed-away": "was renamed",
                    "scenarios/mqtt311/gone.yaml::deleted": "file deleted",
                    "not-a-node-id": "typo"})
    # -k selects only the passing scenario: the baseline is still checked as a whole.
    result = tree.runpytest("-p", "no:cacheprovider", "-k", "accepted")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*baseline entries that name no scenario*",
        "*baselines/gate.yaml: scenarios/mqtt311/wrong.yaml::renamed-away: scenarios/mqtt311/wrong.yaml has no scenario 'renamed-away'*",
        "*baselines/gate.yaml: scenarios/mqtt311/gone.yaml::deleted: no file scenarios/mqtt311/gone.yaml*",
        "*baselines/gate.yaml: not-a-node-id: not a scenario node id*",
    ])
    assert "expects-refusal: " not in result.stdout.str().split("baseline entries that name no scenario")[1]


def test_stale_inline_deviations_in_targets_yaml_are_caught_too(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/good.yaml": PASSING},
               targets(login_url, "    deviations:\n      scenarios/mqtt311/good.yaml::nope: gone\n"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*targets.yaml: targets.gate.deviations: scenarios/mqtt311/good.yaml::nope: *has no scenario 'nope'*"])


def test_a_run_whose_every_scenario_is_skipped_passes_and_says_so(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/skipped.yaml": SKIPPED}, targets(login_url))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*all 1 selected scenarios were skipped: nothing was checked against the target*"])


def test_a_run_that_selects_nothing_exits_5(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/skipped.yaml": SKIPPED}, targets(login_url))
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "no-such-scenario")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "selected scenarios were skipped" not in result.stdout.str()


def test_one_executed_scenario_is_enough(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/skipped.yaml": SKIPPED, "mqtt311/good.yaml": PASSING}, targets(login_url))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_a_run_of_ordinary_tests_is_not_a_conformance_run(pytester, login_url) -> None:
    write_tree(pytester, {}, targets(login_url))
    pytester.makepyfile(test_plain="import pytest\n\ndef test_skip():\n    pytest.skip('not a scenario')\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "test_plain.py")
    assert result.ret == pytest.ExitCode.OK


def test_junit_xml_has_every_scenario_with_its_verdict(tree) -> None:
    baseline(tree, {"scenarios/mqtt311/wrong.yaml::expects-refusal": "fails"})
    tree.runpytest("-p", "no:cacheprovider", "--report-dir", "out")
    cases = {case.get("name"): case for case in ET.parse(tree.path / "out" / "junit.xml").getroot().iter("testcase")}
    assert set(cases) == {"accepted", "expects-refusal"}
    assert cases["accepted"].find("failure") is None
    assert cases["expects-refusal"].find("skipped").get("type") == "pytest.xfail"


def test_a_malformed_baseline_or_an_entry_listed_twice_is_a_usage_error(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/wrong.yaml": FAILING},
               targets(login_url, "    deviations:\n      scenarios/mqtt311/wrong.yaml::expects-refusal: inline\n"))
    baseline(pytester, {"scenarios/mqtt311/wrong.yaml::expects-refusal": "in the file"})
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baselines/gate.yaml: listed in both targets.yaml deviations and the baseline*"])
    (pytester.path / "baselines" / "gate.yaml").write_text("target: gate\nexpected_failures:\n  x::y: ''\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baselines/gate.yaml: expected_failures: x::y: give the reason this target fails it*"])


def test_baseline_option_names_another_file(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/wrong.yaml": FAILING}, targets(login_url))
    (pytester.path / "release.yaml").write_text(
        "target: gate\nexpected_failures:\n  scenarios/mqtt311/wrong.yaml::expects-refusal: known\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--baseline", "release.yaml")
    result.assert_outcomes(xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_a_bad_scenario_file_is_a_broken_allure_result_in_the_setup_category(pytester, login_url) -> None:
    write_tree(pytester, {"mqtt311/good.yaml": PASSING, "mqtt311/bad.yaml": PASSING.replace("- expect_nothing:", "- expect_nothign:")},
               targets(login_url))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--report-dir", "out")
    result.assert_outcomes(passed=1, errors=1)
    results = allure_results(pytester.path / "out" / "allure-results")
    broken = [r for r in results.values() if r["status"] == "broken"]
    assert len(broken) == 1 and broken[0]["name"] == "scenario file scenarios/mqtt311/bad.yaml cannot be used"
    assert broken[0]["statusDetails"]["message"].startswith("setup error: ") and "expect_nothign" in broken[0]["statusDetails"]["message"]
