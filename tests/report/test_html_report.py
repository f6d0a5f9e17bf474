"""`harness report`: the Allure 3 HTML report, opened in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import Chromium, chromium_binary
from report_helpers import FAILING, PASSING, url_target, write_tree

from harness.report import html
from harness.report.html import ReportError, find_allure, strip_analytics

pytest_plugins = ["pytester"]

TEMPLATE = """<body><div id="app"></div>
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-XXXX"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('config', 'G-XXXX', {});
    </script>
    <script>window.allure = {};</script>
</body>"""


def test_the_analytics_tag_and_its_inline_config_are_removed(tmp_path) -> None:
    (tmp_path / "index.html").write_text(TEMPLATE)
    assert strip_analytics(tmp_path) == 1
    text = (tmp_path / "index.html").read_text()
    assert "googletagmanager" not in text and "dataLayer" not in text and "window.allure = {}" in text


def _fake(folder: Path, name: str, version: str, only_for: str = "") -> Path:
    """An executable `name` in `folder` answering `--version` with `version` (when its arguments are `only_for`)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    condition = f'[ "$*" = "{only_for} --version" ]' if only_for else '[ "$1" = "--version" ]'
    script.write_text(f"#!/bin/sh\nif {condition}; then echo {version}; exit 0; fi\nexit 9\n")
    script.chmod(0o755)
    return script


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ALLURE_BIN, and a PATH of one empty folder (the fakes go there); returns that folder."""
    monkeypatch.delenv("ALLURE_BIN", raising=False)
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_the_pinned_version_is_the_checkouts() -> None:
    pinned = json.loads((Path(__file__).resolve().parents[2] / "tools" / "package.json").read_text())
    assert pinned["dependencies"]["allure"] == html.ALLURE_VERSION


def test_allure_bin_comes_first(bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(bare, "allure", "2.32.0")
    chosen = _fake(tmp_path / "elsewhere", "my-allure", "3.18.0")
    monkeypatch.setenv("ALLURE_BIN", str(chosen))
    assert find_allure() == [str(chosen)]


@pytest.mark.parametrize("version, said", [("2.32.0", "is Allure 2, not Allure 3"), ("", "did not answer `--version`")])
def test_an_allure_bin_that_is_not_allure_3_is_an_error(bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        version: str, said: str) -> None:
    _fake(bare, "npx", "3.18.0")  # not tried: ALLURE_BIN says which allure to use
    monkeypatch.setenv("ALLURE_BIN", str(_fake(tmp_path / "java", "allure", version or "-", only_for="" if version else "never")))
    with pytest.raises(ReportError, match=f"^ALLURE_BIN=.*/java/allure {re.escape(said)}: npm install -g allure@3"):
        find_allure()


def test_an_allure_bin_that_does_not_exist_is_an_error(bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLURE_BIN", str(tmp_path / "missing"))
    with pytest.raises(ReportError, match=r"^ALLURE_BIN=.*/missing is not an executable file: npm install -g allure@3"):
        find_allure()


def test_allure_3_on_path_comes_next(bare: Path) -> None:
    _fake(bare, "npx", "3.18.0")
    allure = _fake(bare, "allure", "3.18.0")
    assert find_allure() == [str(allure)]


def test_without_allure_npx_runs_the_pinned_version(bare: Path) -> None:
    npx = _fake(bare, "npx", "3.18.0", only_for=f"--yes allure@{html.ALLURE_VERSION}")
    assert find_allure() == [str(npx), "--yes", f"allure@{html.ALLURE_VERSION}"]


def test_allure_2_on_path_is_named_and_passed_over_for_npx(bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake(bare, "allure", "2.32.0")
    npx = _fake(bare, "npx", "3.18.0", only_for=f"--yes allure@{html.ALLURE_VERSION}")
    assert find_allure() == [str(npx), "--yes", f"allure@{html.ALLURE_VERSION}"]
    assert capsys.readouterr().err == (f"harness report: allure on PATH ({bare}/allure) is Allure 2 (the Java command), "
                                       f"not Allure 3; using npx allure@{html.ALLURE_VERSION}\n")


def test_allure_2_alone_is_named_in_the_error(bare: Path) -> None:
    _fake(bare, "allure", "2.32.0")
    with pytest.raises(ReportError, match=r"allure on PATH \(.*/allure\) is Allure 2 \(the Java command\), not Allure 3, "
                                          r"no npx to fetch allure@\S+\): npm install -g allure@3"):
        find_allure()


def test_an_npx_that_cannot_fetch_allure_is_named_in_the_error(bare: Path) -> None:
    _fake(bare, "npx", "3.18.0", only_for="--offline")
    with pytest.raises(ReportError, match=r"`npx --yes allure@\S+` failed \(is the npm registry reachable\?\)"):
        find_allure()


def test_without_any_allure_the_command_says_in_one_line_how_to_get_it(bare: Path, tmp_path: Path) -> None:
    results = tmp_path / "reports" / "allure-results"
    results.mkdir(parents=True)
    (results / "x-result.json").write_text("{}")
    # A process of its own, as a user runs it: exit code 1, one line, no traceback.
    done = subprocess.run([sys.executable, "-m", "harness.cli", "report"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PATH": str(bare)}, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("harness report: Allure 3 not found (ALLURE_BIN unset, no allure on PATH, no npx to fetch "
                           f"allure@{html.ALLURE_VERSION}): npm install -g allure@3 (needs Node.js and npm), or set "
                           "ALLURE_BIN to an Allure 3 allure\n")
    assert not (tmp_path / "reports" / "allure-report").exists()


def test_the_report_is_made_through_npx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real npx (it reaches the npm registry once, then its cache) from a folder that knows no checkout."""
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed (apt-get install nodejs npm)")
    node_bin = tmp_path / "bin"
    node_bin.mkdir()
    for tool in ("node", "npm", "npx"):  # PATH without any allure, with Node's own commands
        if found := shutil.which(tool):
            (node_bin / tool).symlink_to(Path(found).resolve() if tool == "node" else found)
    monkeypatch.delenv("ALLURE_BIN", raising=False)
    monkeypatch.setenv("PATH", f"{node_bin}{os.pathsep}/usr/bin{os.pathsep}/bin")
    if shutil.which("allure"):
        pytest.skip("an allure is installed in /usr/bin")
    try:
        command = find_allure()
    except ReportError as exc:
        pytest.skip(str(exc))
    assert command[1:] == ["--yes", f"allure@{html.ALLURE_VERSION}"]
    results = tmp_path / "reports" / "allure-results"
    results.mkdir(parents=True)
    (results / "one-result.json").write_text(json.dumps(
        {"uuid": "one", "name": "one", "fullName": "one", "status": "passed", "start": 1, "stop": 2}))
    monkeypatch.chdir(tmp_path)
    from harness.cli import main

    assert main(["report", "--no-single-file"]) == 0
    assert (tmp_path / "reports" / "allure-report" / "index.html").is_file()


@pytest.fixture
def report(pytester, reference_url, broker_env):
    try:
        find_allure()
    except ReportError as exc:
        pytest.skip(str(exc))
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    write_tree(pytester, {"mqtt311/good.yaml": PASSING, "mqtt311/wrong.yaml": FAILING}, url_target("ref", reference_url))
    pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "reports").assert_outcomes(passed=1, failed=1)
    from harness.cli import main

    assert main(["report", str(pytester.path / "reports")]) == 0
    return pytester.path / "reports"


def test_the_report_is_made_without_analytics_in_two_variants(report) -> None:
    assert (report / "allure-report" / "index.html").is_file()
    assert (report / "allure-report-single" / "index.html").is_file()
    assert list((report / "allure-report-single").glob("*.js")) == []  # everything inlined
    for page in report.rglob("*.html"):
        assert "googletagmanager" not in page.read_text(errors="replace"), page


def test_suites_and_the_failed_steps_attachment_show_in_chromium(report) -> None:
    with Chromium(chromium_binary()) as browser:
        browser.open((report / "allure-report-single" / "index.html").as_uri())
        # The suite tree: target, then protocol, then area.
        browser.wait_for("document.querySelector('[data-testid=tree-leaf-title]') || document.body.innerText.includes('MQTT 3.1.1')")
        text = browser.evaluate("document.body.innerText")
        assert "ref" in text and "MQTT 3.1.1" in text and "Failed" in text
        browser.wait_for("[...document.querySelectorAll('*')].some(e => e.children.length == 0 && "
                         "e.textContent.includes('Expects a refusal the broker does not give'))")
        browser.evaluate("""[...document.querySelectorAll('*')].find(e => e.children.length == 0 &&
                            e.textContent.includes('Expects a refusal the broker does not give')).click()""")
        # The test's page: the failed step is open, with what was received, decoded and in hex.
        browser.wait_for("document.body.innerText.includes('2. expect on main')")
        page = browser.evaluate("document.body.innerText")
        assert "1. connect on main" in page and "received: CONNACK" in page
        assert "broker violates the specification" in page  # the category
        assert re.search(r"main \(127\.0\.0\.1:\d+\)\.pcap", page)
        browser.evaluate("""[...document.querySelectorAll('*')].find(e => e.children.length == 0 &&
                            e.textContent.trim() == 'received: CONNACK').click()""")
        shown = browser.wait_for("[...document.querySelectorAll('pre, code')].map(e => e.textContent)"
                                 ".find(t => t.includes('00000000  20 02 00 00'))")
        assert "CONNACK session_present=0 reason_code=0x00 (Connection Accepted)" in shown
        browser.screenshot(report / "failed-test.png")
