"""No secret leaves: after a run that sends, echoes and fails on secrets, no output file holds one in any form."""

import base64
import re
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest
from report_helpers import JWT, RESTRICTED_PASSWORD, write_tree

pytest_plugins = ["pytester"]

PIECE = 8  # any run of this many characters of a secret counts as a leak

LITERAL = "Lit3ral-T0ken-xyz-987654"

LEAKY = f"""
defaults: {{protocol: "3.1.1", area: publish}}
scenarios:
  - id: echoes-the-password
    title: The password comes back in a PUBLISH and the scenario fails on it
    refs: [MQTT-3.3.4-1]
    steps:
      - connected:
      - send: {{packet: subscribe, packet_id: 1, subscriptions: [{{topic_filter: "${{topic}}/echo", qos: 0}}]}}
      - expect: {{packet: suback, packet_id: 1}}
      - send: {{packet: publish, topic: "${{topic}}/echo", payload: "token=${{password}} ro=${{password:restricted}}"}}
      - expect: {{packet: publish, payload: "something else"}}
  - id: echoes-as-a-known-deviation
    title: The same, listed in the baseline
    refs: [MQTT-3.3.4-1]
    steps:
      - connected:
      - send: {{packet: subscribe, packet_id: 1, subscriptions: [{{topic_filter: "${{topic}}/echo", qos: 0}}]}}
      - expect: {{packet: suback, packet_id: 1}}
      - send: {{packet: publish, topic: "${{topic}}/echo", payload: "${{password}}"}}
      - expect: {{packet: publish, payload: "something else"}}
  - id: literal-token
    title: A token written in the scenario is a secret too
    refs: [MQTT-3.2.2-5]
    steps:
      - connect: {{password: "{LITERAL}"}}
      - expect: {{packet: connack, reason_code: 0}}
  - id: restricted-account
    title: The restricted account connects
    refs: [MQTT-3.1.4-4]
    steps:
      - connected: {{account: restricted}}
      - disconnect:
"""


def shapes(secret: str) -> list[bytes]:
    """Every form in which a secret could be written: as is, hex, spaced hex, URL-encoded, base64."""
    raw = secret.encode()
    forms = {raw, raw.hex().encode(), raw.hex().upper().encode(), raw.hex(" ").encode(), raw.hex(" ").upper().encode(),
             quote(secret, safe="").encode(), base64.b64encode(raw).rstrip(b"=")}
    # Nor in pieces: describe() previews the first 48 bytes of a field, cutting a long secret.
    forms |= {raw[i : i + PIECE] for i in range(len(raw) - PIECE + 1)}
    return sorted(forms)


# Allure 3's single-file report embeds each data file as d("name", "<base64>"), and its own app code
# as base64 data: URIs. The data is decoded and searched; the app code (Allure's, shipped in its
# package, random-looking base64 that would match pieces of a JWT by chance) is left out.
_EMBEDDED = re.compile(rb'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)')
_APP_CODE = re.compile(rb"data:[a-z/]+;base64,[A-Za-z0-9+/=]+")


def contents(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    if path.suffix == ".html":
        parts = [(f"{path.name}#{m.group(1).decode()}", base64.b64decode(m.group(2))) for m in _EMBEDDED.finditer(data)]
        return [(path.name, _APP_CODE.sub(b"", _EMBEDDED.sub(b"", data))), *parts]
    if path.suffix == ".js" and path.name.startswith("app-"):
        return []  # Allure's application bundle, copied from its npm package
    return [(path.name, data)]


def leaks(directory: Path, secrets: list[str], extra_text: str = "") -> list[str]:
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        for name, data in contents(path):
            found += [f"{path.parent.relative_to(directory)}/{name}: {form!r}" for s in secrets for form in shapes(s) if form in data]
    found += [f"output: {form!r}" for s in secrets for form in shapes(s) if form in extra_text.encode()]
    return found


def test_the_search_finds_a_planted_secret_in_any_shape(tmp_path) -> None:
    for index, form in enumerate(shapes(JWT)):
        (tmp_path / f"{index}.bin").write_bytes(b"prefix " + form + b" suffix")
    found_in = {finding.split(":", 1)[0] for finding in leaks(tmp_path, [JWT])}
    assert found_in == {f"./{index}.bin" for index in range(len(shapes(JWT)))}
    # Inside a single-file report, in a data file embedded as base64, it is found as well.
    (tmp_path / "report.html").write_text(f'<script>d("data/x.json","{base64.b64encode(JWT.encode()).decode()}")</script>')
    assert any(f.startswith("./report.html#data/x.json") for f in leaks(tmp_path, [JWT]))


@pytest.fixture
def leaky_run(pytester, reference_broker, monkeypatch):
    monkeypatch.setenv("MQTT_TEST_RO_PASSWORD", RESTRICTED_PASSWORD)
    url = f"mqtt://harness:{quote(JWT, safe='')}@{reference_broker.host}:{reference_broker.port}"
    targets = textwrap.dedent(f"""\
        default: leaky
        targets:
          leaky:
            url: {url}
            accounts:
              restricted: {{username: restricted, password: {{env: MQTT_TEST_RO_PASSWORD}}}}
        """)
    write_tree(pytester, {"mqtt311/leaky.yaml": LEAKY}, targets)
    baseline = pytester.path / "baselines" / "leaky.yaml"
    baseline.parent.mkdir()
    baseline.write_text("target: leaky\nexpected_failures:\n"
                        "  scenarios/mqtt311/leaky.yaml::echoes-as-a-known-deviation: the broker echoes\n")
    # Two workers: the Allure results and pcaps are written by the workers, the summary by the controller.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--report-dir", "out", "-rA")
    result.assert_outcomes(passed=1, failed=2, xfailed=1)
    return pytester.path / "out", result.stdout.str() + result.stderr.str()


def test_no_output_holds_a_secret(leaky_run) -> None:
    out, output = leaky_run
    # Every output: the run's own, the comparison, and the HTML report where Node's allure is installed.
    from harness.cli import main
    from harness.report.html import ReportError, find_allure

    assert main(["compare", str(out), "-o", str(out)]) == 0
    assert (out / "comparison.md").is_file()
    try:
        find_allure()
    except ReportError:
        pass
    else:
        assert main(["report", str(out)]) == 0
        assert (out / "allure-report-single" / "index.html").is_file()
    # The run did send and receive the secrets: the failure shows the echoed PUBLISH, masked.
    assert "received: PUBLISH" in output and "*" * 24 in output
    assert (out / "allure-results").is_dir() and list((out / "allure-results").glob("*.pcap"))
    assert list((out / "pcap").glob("*.pcap")) and (out / "junit.xml").is_file() and (out / "summary.md").is_file()
    assert leaks(out, [JWT, RESTRICTED_PASSWORD, LITERAL], output) == []
