"""Vendor comparison: a matrix of scenarios by target, in Markdown for a pull request and in HTML."""

import json
from pathlib import Path

import pytest
from chromium import Chromium, chromium_binary
from report_helpers import PASSING, write_tree

from harness.report.compare import MARKDOWN_LIMIT, load, markdown, write

pytest_plugins = ["pytester"]

MISMATCH = ("step 2 (line 9) expect on main\nexpected: CONNACK reason_code=5\nreceived: CONNACK reason_code=0x00\n"
            "          00000000  20 02 00 00  | ...|\nmismatch: reason_code: expected 5, got 0\nchecks: MQTT-3.2.2-5")


def run_dir(tmp_path: Path, target: str, results: dict[str, tuple[str, str]], version: str = "1.0") -> Path:
    directory = tmp_path / target
    directory.mkdir()
    document = {"target": target, "version": version, "profile": "strict", "where": "launched", "results": {
        nodeid: {"verdict": verdict, "detail": detail, "title": nodeid.split("::")[1], "protocol": "3.1.1",
                 "area": "connect" if "connect" in nodeid else "publish",
                 "refs": "MQTT-3.2.2-5" if "refuse" in nodeid else "MQTT-3.1.4-4"}
        for nodeid, (verdict, detail) in results.items()}}
    (directory / "results.json").write_text(json.dumps(document))
    return directory


@pytest.fixture
def two_runs(tmp_path):
    a = run_dir(tmp_path, "alpha", {
        "scenarios/connect.yaml::accept": ("passed", ""),
        "scenarios/connect.yaml::refuse": ("failed", MISMATCH),
        "scenarios/publish.yaml::qos2": ("skipped", "target alpha does not offer: qos2"),
        "scenarios/publish.yaml::retain": ("xfailed", "known deviation of alpha: retain is ignored, as documented"),
    })
    b = run_dir(tmp_path, "beta", {
        "scenarios/connect.yaml::accept": ("failed", "setup error: broker mqtt://x:1 unreachable: refused"),
        "scenarios/connect.yaml::refuse": ("passed", ""),
        "scenarios/publish.yaml::qos2": ("passed", ""),
        "scenarios/publish.yaml::retain": ("failed", "[XPASS(strict)] known deviation of beta: was broken"),
    })
    return tmp_path, [a, b]


def test_cells_totals_and_one_line_reasons(two_runs) -> None:
    _, dirs = two_runs
    comparison = load(dirs)
    assert [t.name for t in comparison.targets] == ["alpha", "beta"]
    cells = {(row.key.split("::")[1], name): cell for row in comparison.rows for name, cell in row.cells.items()}
    assert cells["refuse", "alpha"].status == "fail" and cells["refuse", "alpha"].reason == "mismatch: reason_code: expected 5, got 0"
    assert cells["accept", "beta"].status == "error" and "unreachable" in cells["accept", "beta"].reason
    assert cells["qos2", "alpha"].status == "skipped" and cells["qos2", "alpha"].reason == "target alpha does not offer: qos2"
    assert cells["retain", "alpha"].status == "deviation" and cells["retain", "alpha"].reason == "retain is ignored, as documented"
    assert cells["retain", "beta"].status == "stale"
    assert comparison.totals("alpha") == {"pass": 1, "fail": 1, "skipped": 1, "deviation": 1}
    # Grouped by area, then statement.
    assert [(r.area, r.statement) for r in comparison.rows] == [
        ("connect", "MQTT-3.1.4-4"), ("connect", "MQTT-3.2.2-5"), ("publish", "MQTT-3.1.4-4"), ("publish", "MQTT-3.1.4-4")]


def test_an_intermittent_entry_is_one_status_whether_it_failed_or_passed_this_time(tmp_path) -> None:
    # The snapshot check compares statuses: a race in the broker must not make the snapshot flip.
    reason = "a race in the broker, 1 run in 4"
    runs = [run_dir(tmp_path, name, {"scenarios/connect.yaml::refuse": (verdict, f"known intermittent deviation of {name}: {reason}")})
            for name, verdict in (("alpha", "xfailed"), ("beta", "xpassed"))]
    comparison = load(runs)
    refuse = next(row for row in comparison.rows if row.key.endswith("::refuse"))
    assert {name: (cell.status, cell.reason) for name, cell in refuse.cells.items()} == {
        "alpha": ("intermittent", reason), "beta": ("intermittent", reason)}
    assert "- **beta** 🔀 intermittent `scenarios/connect.yaml::refuse`: " + reason in markdown(comparison)


def test_markdown_fits_a_pull_request_comment(two_runs) -> None:
    _, dirs = two_runs
    text = markdown(load(dirs))
    assert text.startswith("## MQTT conformance: alpha vs beta")
    assert "| ❌ fail | 1 | 0 |" in text and "| ⚠️ error | 0 | 1 |" in text
    assert "| connect | MQTT-3.2.2-5 | `scenarios/connect.yaml::refuse` | ❌ fail | ✅ pass |" in text
    assert "- **alpha** ❌ fail `scenarios/connect.yaml::refuse`: mismatch: reason_code: expected 5, got 0" in text
    assert "<details><summary>All scenarios</summary>" in text


def test_a_huge_comparison_is_cut_to_the_comment_limit(tmp_path) -> None:
    many = {f"scenarios/connect.yaml::s{i:05d}": ("failed", MISMATCH + " " + "x" * 200) for i in range(2000)}
    comparison = load([run_dir(tmp_path, "alpha", many), run_dir(tmp_path, "beta", dict.fromkeys(many, ("passed", "")))])
    text = markdown(comparison)
    assert len(text) <= MARKDOWN_LIMIT and text.rstrip().endswith("see comparison.html")


def test_a_parent_directory_holds_one_run_per_target_and_duplicates_are_refused(two_runs) -> None:
    parent, dirs = two_runs
    assert [t.name for t in load([parent]).targets] == ["alpha", "beta"]
    with pytest.raises(SystemExit, match="appears twice"):
        load([dirs[0], dirs[0]])


def test_the_command_writes_both_files(two_runs, capsys) -> None:
    from harness.cli import main

    parent, _ = two_runs
    assert main(["compare", str(parent)]) == 0
    assert (parent / "comparison.html").is_file() and (parent / "comparison.md").is_file()


def _check_in_chromium(html_path: Path, expect: dict[str, dict[str, str]], screenshot: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    with Chromium(binary) as browser:
        browser.open(html_path.as_uri())
        browser.wait_for("document.querySelector('#matrix tbody tr.scenario')")
        cells = browser.evaluate("""Object.fromEntries([...document.querySelectorAll('#matrix tr.scenario')].map(tr =>
            [tr.dataset.scenario, Object.fromEntries([...tr.querySelectorAll('td[data-target]')].map(td =>
                [td.dataset.target, td.dataset.status]))]))""")
        for scenario, statuses in expect.items():
            assert cells[scenario] == statuses, scenario
        heads = browser.evaluate("[...document.querySelectorAll('#matrix thead th')].map(th => th.textContent)")
        assert heads[1:] == list(next(iter(expect.values())))
        # It is rendered, not only parsed: the matrix has a size and the cells their colours.
        box = browser.evaluate("(() => { const r = document.querySelector('#matrix').getBoundingClientRect(); return [r.width, r.height]; })()")
        assert box[0] > 300 and box[1] > 50
        colour = browser.evaluate("getComputedStyle(document.querySelector('td[data-status=pass]')).backgroundColor")
        assert colour == "rgb(227, 245, 230)"
        browser.screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000


def test_the_html_renders_in_headless_chromium(two_runs) -> None:
    parent, dirs = two_runs
    html_path, _ = write(load(dirs), parent)
    assert "<script" not in html_path.read_text()
    _check_in_chromium(html_path, {"scenarios/connect.yaml::refuse": {"alpha": "fail", "beta": "pass"},
                                   "scenarios/publish.yaml::qos2": {"alpha": "skipped", "beta": "pass"}}, parent / "shot.png")


MOSQUITTO_FAILS = """
defaults: {protocol: "3.1", area: connect}
scenarios:
  - id: clientid-24-characters-refused
    title: A 24-character ClientId is refused under MQTT 3.1 with CONNACK 2
    refs: [MQTT31-CLIENTID-LENGTH]
    steps:
      - connect: {client_id: "${cid}abcdefghijklmnopqrstuvwx"}
      - expect: {packet: connack, reason_code: 2}
"""


def test_reference_broker_and_mosquitto_side_by_side(pytester) -> None:
    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING, "mqtt31/connect.yaml": MOSQUITTO_FAILS},
               "targets:\n  reference:\n    launch: reference\n  mosquitto:\n    launch: mosquitto\n")
    for target in ("reference", "mosquitto"):
        pytester.runpytest("-p", "no:cacheprovider", "--target", target, "--report-dir", f"reports/{target}")
    from harness.report.compare import main

    assert main([str(pytester.path / "reports")]) == 0
    html_path = pytester.path / "reports" / "comparison.html"
    _check_in_chromium(html_path, {
        "scenarios/mqtt311/connect.yaml::accepted": {"mosquitto": "pass", "reference": "pass"},
        "scenarios/mqtt31/connect.yaml::clientid-24-characters-refused": {"mosquitto": "fail", "reference": "pass"},
    }, pytester.path / "shot.png")
    md = (pytester.path / "reports" / "comparison.md").read_text()
    assert "| ✅ pass | 1 | 2 |" in md and "mismatch: reason_code: expected 2, got 0" in md


def test_a_snapshot_is_whole_dated_and_checked_against_a_fresh_run(two_runs, tmp_path, capsys) -> None:
    import datetime

    from harness.report.snapshot import check_snapshot, snapshot_text, write_snapshot

    parent, dirs = two_runs
    comparison = load(dirs)
    text = snapshot_text(comparison, datetime.date(2026, 12, 3))
    assert "Snapshot taken on 2026-12-03" in text and "<details><summary>All scenarios</summary>" in text
    snapshot = write_snapshot(comparison, tmp_path / "docs" / "vendor-comparison.md")
    # Another day, same verdicts: the check passes (the date is not a verdict).
    snapshot.write_text(snapshot.read_text().replace(datetime.date.today().isoformat(), "2020-01-01"))
    assert check_snapshot(comparison, snapshot)
    # A verdict moves: the check fails and shows the line.
    (tmp_path / "again").mkdir()
    moved = load([run_dir(tmp_path / "again", "alpha", {"scenarios/connect.yaml::refuse": ("passed", "")}), dirs[1]])
    assert not check_snapshot(moved, snapshot)
    assert "no longer matches this run" in capsys.readouterr().err
    assert not check_snapshot(comparison, tmp_path / "missing.md")


def test_a_snapshot_check_ignores_the_order_of_the_columns(two_runs, tmp_path) -> None:
    import dataclasses

    from harness.report.snapshot import check_snapshot, write_snapshot

    comparison = load(two_runs[1])
    snapshot = write_snapshot(comparison, tmp_path / "snap.md")
    # `--run beta,alpha` writes the columns in that order; a results directory reads them sorted.
    reversed_targets = dataclasses.replace(comparison, targets=list(reversed(comparison.targets)))
    assert check_snapshot(reversed_targets, snapshot)
    moved = dataclasses.replace(reversed_targets, rows=[dataclasses.replace(r, cells={}) for r in comparison.rows])
    assert not check_snapshot(moved, snapshot)


def test_the_command_checks_a_snapshot(two_runs, tmp_path) -> None:
    from harness.cli import main

    parent, _ = two_runs
    snapshot = tmp_path / "snap.md"
    assert main(["compare", str(parent), "--snapshot", str(snapshot)]) == 0
    assert main(["compare", str(parent), "--check", str(snapshot)]) == 0
    snapshot.write_text(snapshot.read_text().replace("✅ pass", "❌ fail", 1))
    assert main(["compare", str(parent), "--check", str(snapshot)]) == 1


def test_run_runs_each_target_then_compares_and_snapshots(pytester, capfd) -> None:
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING},
               "targets:\n  reference:\n    launch: reference\n  also-reference:\n    launch: reference\n")
    from harness.report.compare import main

    assert main(["reports", "--run", "reference,also-reference", "-n", "0", "--snapshot", "snap.md"]) == 0
    assert "--target also-reference" in capfd.readouterr().out
    snapshot = (pytester.path / "snap.md").read_text()
    assert "## MQTT conformance: reference vs also-reference" in snapshot and "| ✅ pass | 1 | 1 |" in snapshot
    # Over every endpoint: each row names its endpoint.
    assert main(["every", "--run", "reference,also-reference", "-n", "0", "--transport", "tcp,ws"]) == 0
    assert "--transport tcp,ws" in capfd.readouterr().out
    table = (pytester.path / "every" / "comparison.md").read_text()
    assert "::accepted[tcp]`" in table and "::accepted[ws]`" in table and "| ✅ pass | 2 | 2 |" in table
    # An unknown target: pytest says so in one line, and there is nothing to compare.
    with pytest.raises(SystemExit, match="no results.json in reports/nosuch"):
        main(["reports", "--run", "nosuch", "-n", "0"])
    assert "unknown target 'nosuch'" in capfd.readouterr().err


def test_run_with_jobs_runs_targets_at_once_each_output_whole(pytester, capfd) -> None:
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING},
               "targets:\n  reference:\n    launch: reference\n  also-reference:\n    launch: reference\n")
    from harness.report.compare import main

    assert main(["reports", "--run", "reference,also-reference", "-n", "0", "--jobs", "2"]) == 0
    out = capfd.readouterr().out
    runs = out.split("$ ")[1:]
    assert sorted("--target also-reference" in run for run in runs) == [False, True]
    assert all("1 passed" in run for run in runs)  # each command line followed by its own run's output
    assert "| ✅ pass | 1 | 1 |" in (pytester.path / "reports" / "comparison.md").read_text()
    with pytest.raises(SystemExit):
        main(["reports", "--run", "reference", "--jobs", "0"])
    assert "--jobs: at least 1 run at a time, not 0" in capfd.readouterr().err


def test_run_counts_a_broker_not_installed_here_as_skipped_not_failed(pytester, capfd, monkeypatch) -> None:
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING},
               "targets:\n  reference:\n    launch: reference\n  aedes:\n    launch: aedes\n")
    monkeypatch.setenv("AEDES_DIR", str(pytester.path / "no-aedes-here"))
    from harness.report.compare import main

    assert main(["reports", "--run", "reference,aedes", "-n", "0"]) == 0
    err = capfd.readouterr().err
    assert "harness compare: target aedes is not installed here: aedes:" in err
    assert "its column shows every scenario skipped" in err
    assert "| ⏭️ skipped | 0 | 1 |" in (pytester.path / "reports" / "comparison.md").read_text()


def test_not_installed_reason_needs_every_scenario_skipped_for_that_reason(tmp_path) -> None:
    from harness.report.snapshot import not_installed_reason

    why = "Skipped: target x is not installed here: x: binary not found"
    assert not_installed_reason(run_dir(tmp_path, "x", {"s/a.yaml::a": ("skipped", why)})) == why.removeprefix("Skipped: ")
    mixed = run_dir(tmp_path, "y", {"s/a.yaml::a": ("skipped", why), "s/a.yaml::b": ("failed", "mismatch")})
    assert not_installed_reason(mixed) is None
    assert not_installed_reason(run_dir(tmp_path, "z", {"s/a.yaml::a": ("skipped", "target z does not offer: qos2")})) is None
    assert not_installed_reason(tmp_path / "missing") is None


def test_run_into_an_absolute_folder_runs_what_a_plain_pytest_here_runs(pytester, tmp_path_factory, capfd) -> None:
    """pytest looks for its rootdir (and ini file) among path-like arguments: a separate absolute
    --report-dir value outside the folder would lose the folder's testpaths and collect tests/ too."""
    write_tree(pytester, {"mqtt311/connect.yaml": PASSING}, "targets:\n  reference:\n    launch: reference\n")
    pytester.makeini("[pytest]\ntestpaths = scenarios\n")
    pytester.mkdir("tests").joinpath("test_not_a_scenario.py").write_text("def test_x():\n    assert False\n")
    results = tmp_path_factory.mktemp("elsewhere") / "reports"
    from harness.report.compare import main

    assert main([str(results), "--run", "reference", "-n", "0"]) == 0
    assert "--report-dir=" in capfd.readouterr().out
    verdicts = json.loads((results / "reference" / "results.json").read_text())
    assert list(verdicts["results"]) == ["scenarios/mqtt311/connect.yaml::accepted"]


def test_passes_that_took_different_branches_are_a_difference(tmp_path) -> None:
    from harness.report.snapshot import snapshot_text

    runs = []
    for target, branch in (("alpha", "step 2 CONNACK reason_code=4"), ("beta", "step 2 CONNACK reason_code=5")):
        directory = run_dir(tmp_path, target, {"scenarios/connect.yaml::refuse": ("passed", "")})
        document = json.loads((directory / "results.json").read_text())
        document["results"]["scenarios/connect.yaml::refuse"]["branch"] = branch
        (directory / "results.json").write_text(json.dumps(document))
        runs.append(directory)
    comparison = load(runs)
    assert not comparison.rows[0].uniform
    text = markdown(comparison)
    assert "### Differences and failures (1 of 1 scenarios)" in text
    assert "| ✅ pass (step 2 CONNACK reason_code=4) | ✅ pass (step 2 CONNACK reason_code=5) |" in text
    # The committed snapshot records verdicts only: a broker may take either branch from run to run.
    snapshot = snapshot_text(comparison)
    assert "reason_code=4" not in snapshot and "Every scenario has the same verdict" in snapshot


EITHER_OR = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: either-or
    title: A wrong password gets CONNACK 4 or 5
    refs: [MQTT-3.2.2-5]
    requires: [auth]
    steps:
      - connect: {password: "wrong${random:6}"}
      - expect: {packet: connack, reason_code: {one_of: [4, 5]}, session_present: false}
      - expect_close:
"""


def test_a_run_records_the_branch_in_results_summary_and_allure(pytester) -> None:
    write_tree(pytester, {"mqtt311/connect.yaml": EITHER_OR}, "targets:\n  reference:\n    launch: reference\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--report-dir", "reports")
    result.assert_outcomes(passed=1)
    verdict = json.loads((pytester.path / "reports" / "results.json").read_text())["results"]
    assert verdict["scenarios/mqtt311/connect.yaml::either-or"]["branch"] == "step 2 CONNACK reason_code=4"
    assert "took: step 2 CONNACK reason_code=4" in (pytester.path / "reports" / "summary.md").read_text()
    allure = [json.loads(p.read_text()) for p in (pytester.path / "reports" / "allure-results").glob("*-result.json")]
    branch = [p for p in allure[0]["parameters"] if p["name"] == "branch"]
    assert len(branch) == 1 and "step 2 CONNACK reason_code=4" in branch[0]["value"] and branch[0].get("excluded"), branch
