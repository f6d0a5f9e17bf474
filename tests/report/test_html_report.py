"""`harness report`: the Allure 3 HTML report, opened in headless Chromium."""

import re

import pytest
from chromium import Chromium, chromium_binary
from report_helpers import FAILING, PASSING, url_target, write_tree

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


def test_without_node_allure_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys) -> None:
    from harness.report import html

    monkeypatch.setenv("ALLURE_BIN", str(tmp_path / "missing"))
    monkeypatch.setattr(html, "ROOT", tmp_path)
    monkeypatch.setattr(html.shutil, "which", lambda name: None)
    with pytest.raises(ReportError, match="npm ci --prefix tools"):
        html.find_allure()


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
