"""The built-in suite and the user's own files: what a run from any folder collects, and which
targets file, profile and baseline it reads (harness/suite, harness/folders.py)."""

from __future__ import annotations

import textwrap

import pytest

from harness import suite
from harness.scenarios.model import load_scenarios

pytest_plugins = ["pytester"]

OWN = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: my-own
    title: A valid CONNECT is accepted
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - disconnect:
"""
BUILTIN_IDS = {f"{suite.builtin_nodeid(p)}::{s.id}" for p in suite.scenario_files() for s in load_scenarios(p)}
ONE_BUILTIN = "scenarios/mqtt311/connect.yaml::valid-connect-accepted"


def _collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "::" in line and not line.startswith(("ERROR", "FAILED"))]


def _scenarios(ids: list[str]) -> set[str]:
    """Node ids without the variant suffix (`...::id[paho]`)."""
    return {i.split("[", 1)[0] for i in ids}


def test_a_folder_without_scenarios_collects_the_built_in_suite_under_its_usual_node_ids(pytester) -> None:
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert _scenarios(_collected(result)) == BUILTIN_IDS


def test_markers_keywords_and_node_ids_select_built_in_scenarios(pytester) -> None:
    selected = _collected(pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "-m", "mqtt31", "-k", "will"))
    assert selected and all(i.startswith("scenarios/mqtt31/will.yaml::") for i in selected)
    # A built-in node id, though no such file is in this folder.
    assert _collected(pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", ONE_BUILTIN)) == [ONE_BUILTIN]
    ran = pytester.runpytest("-q", "-p", "no:cacheprovider", ONE_BUILTIN)
    ran.assert_outcomes(passed=1)


def test_suite_none_collects_nothing_and_exits_5(pytester) -> None:
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--suite", "none")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_the_users_own_scenario_folder_runs_alone_or_next_to_the_built_in_suite(pytester) -> None:
    # Not below a folder named scenarios: a top-level `scenarios:` key makes it a scenario file.
    (pytester.path / "checks").mkdir()
    (pytester.path / "checks" / "mine.yaml").write_text(textwrap.dedent(OWN), encoding="utf-8")
    (pytester.path / "checks" / "compose.yaml").write_text("services: {broker: {image: x}}\n", encoding="utf-8")
    alone = _collected(pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "checks"))
    assert alone == ["checks/mine.yaml::my-own"]
    both = _collected(pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "checks", "--suite", "builtin"))
    assert _scenarios(both) == BUILTIN_IDS | {"checks/mine.yaml::my-own"}


def test_a_folder_with_its_own_scenarios_runs_those_not_the_built_in_suite(pytester) -> None:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "mine.yaml").write_text(textwrap.dedent(OWN), encoding="utf-8")
    assert _collected(pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")) == ["scenarios/mine.yaml::my-own"]


def test_the_header_names_version_target_profile_and_where_they_come_from(pytester) -> None:
    import harness

    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "--target", "mosquitto")
    result.stdout.fnmatch_lines([f"mqtt-conformance-harness {harness.__version__}: target mosquitto (from built-in "
                                 "harness/suite/targets.yaml), profile strict (built-in harness/profiles/strict.yaml), "
                                 "baseline: built-in harness/suite/baselines/mosquitto.yaml"])


def test_the_users_targets_file_extends_and_overrides_the_built_in_targets_by_name(pytester) -> None:
    (pytester.path / "targets.yaml").write_text(textwrap.dedent("""\
        default: mine
        targets:
          mine: {url: "mqtt://127.0.0.1:1", profile: strict}
          mosquitto: {url: "mqtt://127.0.0.1:2", profile: aedes}
        """), encoding="utf-8")
    mine = pytester.runpytest("--collect-only", "-p", "no:cacheprovider")
    mine.stdout.fnmatch_lines(["*: target mine (from targets.yaml), profile strict *, baseline: none"])
    # The same name replaces the built-in entry, and with it the built-in baseline: the target is the user's now.
    replaced = pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "--target", "mosquitto")
    replaced.stdout.fnmatch_lines(["*: target mosquitto (from targets.yaml), profile aedes *, baseline: none",
                                   "*mqtt://127.0.0.1:2*"])
    # A built-in target the file does not name is still there.
    pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "--target", "reference-limited").stdout.fnmatch_lines(
        ["*target reference-limited (from built-in harness/suite/targets.yaml), profile limited*"])


def test_the_users_profiles_and_baselines_win_over_the_built_in_ones(pytester) -> None:
    (pytester.path / "profiles").mkdir()
    (pytester.path / "profiles" / "strict.yaml").write_text(
        "name: strict\ndescription: my strict, 3.1.1 only\nprotocols: ['3.1.1']\n", encoding="utf-8")
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "reference.yaml").write_text(
        f"target: reference\nexpected_failures:\n  {ONE_BUILTIN}: claimed, to see the user's baseline used\n", encoding="utf-8")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rsf", "-m", "mqtt5 or mqtt311", "-k", "valid-connect-accepted")
    result.stdout.fnmatch_lines(["*target reference (from built-in harness/suite/targets.yaml), profile strict "
                                 "(profiles/strict.yaml), baseline: baselines/reference.yaml*"])
    # The 5.0 scenario is skipped (the user's strict has no 5.0), the 3.1.1 one XPASSes the user's baseline.
    result.stdout.fnmatch_lines(["*profile strict does not offer MQTT 5.0*"])
    result.stdout.fnmatch_lines([f"FAILED {ONE_BUILTIN}*XPASS(strict*"])


def test_a_profile_given_as_a_path(pytester) -> None:
    (pytester.path / "drafted.yaml").write_text("name: drafted\nprotocols: ['5.0']\n", encoding="utf-8")
    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "--profile", "drafted.yaml")
    result.stdout.fnmatch_lines(["*profile drafted (drafted.yaml)*"])
    bad = pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "--profile", "nope.yaml")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*profile file nope.yaml not found*"])


def test_an_absolute_report_dir_does_not_lose_the_users_targets_file_under_xdist(pytester, tmp_path) -> None:
    """pytest takes its rootdir from existing paths on the command line, option values included."""
    reports = tmp_path / "elsewhere" / "reports"
    reports.mkdir(parents=True)
    (pytester.path / "targets.yaml").write_text("targets:\n  mine: {launch: reference}\n", encoding="utf-8")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--target", "mine", "--report-dir", str(reports),
                                           "-n", "2", ONE_BUILTIN)
    result.assert_outcomes(passed=1)


def test_no_benchmark_warning_under_xdist(pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", ONE_BUILTIN)
    result.assert_outcomes(passed=1)
    assert "PytestBenchmarkWarning" not in result.stdout.str() + result.stderr.str()


def test_harness_version_and_list(capsys) -> None:
    import harness
    from harness.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"harness (mqtt-conformance-harness) {harness.__version__}"
    assert main(["list", "scenarios"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(BUILTIN_IDS) and any(line.startswith(ONE_BUILTIN + "  [MQTT 3.1.1]") for line in listed)
    assert main(["list", "targets"]) == 0
    assert "  reference-watson-iot " in capsys.readouterr().out
