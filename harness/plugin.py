"""The pytest plugin: every scenario in a YAML file under scenarios/ becomes one test item.

Node ids are `scenarios/<file>.yaml::<scenario id>`; items are marked with their protocol version
(`mqtt31`, `mqtt311`, `mqtt5`) and their area (`connect`, ...) so `-m` and `-k` select. The
target is chosen by `--broker URL`, `--target NAME` (targets.yaml) or the file's default, and a
launched target is started once, by the xdist controller when there is one.
"""

import itertools
import secrets
import string
from pathlib import Path
from typing import Any

import pytest

from harness.clients.paho import NeedsRawClient
from harness.errors import HarnessError, ScenarioFileError
from harness.report.categories import DEVIATION_PREFIX, INTERMITTENT_PREFIX
from harness.report.evidence import ScenarioEvidence
from harness.report.hooks import ReportHooks, apply_baseline
from harness.scenarios.model import Scenario, load_scenarios
from harness.scenarios.runner import ScenarioFailed, ScenarioRunner, SetupFailed
from harness.targets import (
    TargetNotInstalled,
    TargetSession,
    TargetSpec,
    check_tls,
    target_from_file,
    target_from_url,
)
from harness.targets.profiles import load_profile
from harness.wire import Version

PROTOCOL_MARKERS = {Version.V31: "mqtt31", Version.V311: "mqtt311", Version.V5: "mqtt5"}
SESSION_KEY = pytest.StashKey[TargetSession]()
_ALNUM = string.ascii_lowercase + string.digits


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mqtt", "MQTT conformance harness")
    group.addoption("--broker", metavar="URL", help="run scenarios against this broker: mqtt://[user:pass@]host:port")
    group.addoption("--target", metavar="NAME", help="run scenarios against this entry of targets.yaml")
    group.addoption("--profile", metavar="NAME", help="override the target's profile (default: strict)")
    group.addoption("--targets-file", metavar="PATH", help="targets file (default: targets.yaml in the rootdir)")
    group.addoption("--mqtt-timeout", type=float, default=3.0, metavar="SECONDS",
                    help="how long an expect step waits before it fails (default 3)")
    group.addoption("--report-dir", metavar="DIR", help="write a readable summary of the scenario results here")
    group.addoption("--transport", metavar="NAMES",
                    help="run the scenarios over these endpoints of the target: tcp, tls, ws, wss (comma-separated), or all")
    group.addoption("--clients", metavar="KINDS",
                    help="run every scenario with these client kinds: raw, paho or raw,paho (default: the kinds each "
                         "scenario declares); a scenario paho cannot do is skipped for paho with the step that needs raw")
    group.addoption("--tls-ca", metavar="PEM", help="CA file that verifies the broker's certificate (default: system store)")
    group.addoption("--tls-cert", metavar="PEM", help="client certificate for mutual TLS")
    group.addoption("--tls-key", metavar="PEM", help="key of the client certificate")
    group.addoption("--tls-server-name", metavar="NAME", help="name the broker's certificate must carry (and SNI)")
    group.addoption("--tls-min-version", metavar="VERSION", choices=["1.2", "1.3"], help="lowest TLS version to accept")
    group.addoption("--tls-insecure", action="store_true", default=None,
                    help="do NOT verify the broker's certificate (said loudly in the run header)")
    group.addoption("--baseline", metavar="PATH",
                    help="the target's expected failures (default: baselines/<target>.yaml when it exists)")


def _target_spec(config: pytest.Config) -> TargetSpec:
    broker, target = config.getoption("broker"), config.getoption("target")
    if broker and target:
        raise HarnessError("give --broker or --target, not both")
    path = Path(config.getoption("targets_file") or config.rootpath / "targets.yaml")
    spec = target_from_url(broker) if broker else target_from_file(path, target)
    cli = {key: config.getoption(f"tls_{option}") for key, option in
           (("ca_file", "ca"), ("cert_file", "cert"), ("key_file", "key"), ("server_name", "server_name"),
            ("min_version", "min_version"), ("insecure", "insecure"))}
    spec.tls.update(check_tls({k: v for k, v in cli.items() if v is not None}, "--tls"))  # command line wins
    return spec


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _default_report_options(config)
    # A bad scenario file is one collection error; the other files must still run.
    config.option.continue_on_collection_errors = True
    for marker in PROTOCOL_MARKERS.values():
        config.addinivalue_line("markers", f"{marker}: scenario for that MQTT protocol version")
    config.addinivalue_line("markers", "scenario: an MQTT conformance scenario from a YAML file")
    config.addinivalue_line("markers", "timer: a scenario that waits on a protocol timer (keepalive, expiry)")
    try:
        spec = _target_spec(config)
        profile = load_profile(config.getoption("profile") or spec.profile)
        baseline_sources = apply_baseline(config, spec)  # baselines/<target>.yaml joins the target's deviations
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    session = TargetSession(spec, profile)
    try:
        session.choose_endpoints(config.getoption("transport"))
        session.choose_clients(config.getoption("clients"))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if session.insecure_endpoints() and not hasattr(config, "workerinput"):
        # Also in the warnings summary, which -q keeps: nobody should miss an unverified broker.
        config.issue_config_time_warning(pytest.PytestWarning(
            f"TLS certificate verification is OFF for {', '.join(session.insecure_endpoints())} of target {spec.name}"), 2)
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "mqtt_target" in worker_input:
        session.adopt(worker_input["mqtt_target"])
    config.stash[SESSION_KEY] = session
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session), "mqtt-harness-xdist")
    config.pluginmanager.register(_ResultLog(config), "mqtt-harness-results")
    config.pluginmanager.register(ReportHooks(config, [session], {spec.name: baseline_sources}), "mqtt-harness-report")


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    return session.header_lines() if session is not None else []


def _default_report_options(config: pytest.Config) -> None:
    """--report-dir DIR also sends Allure results and JUnit XML there unless they are given."""
    directory = config.getoption("report_dir")
    if not directory:
        return
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(Path(directory) / "allure-results")
    if hasattr(config.option, "xmlpath") and not config.option.xmlpath:
        config.option.xmlpath = str(Path(directory) / "junit.xml")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.stop()


class _XdistHooks:
    def __init__(self, session: TargetSession) -> None:
        self.session = session

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        # The controller starts the broker once and hands its address to every worker.
        node.workerinput["mqtt_target"] = self.session.export()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and "scenarios" in file_path.parts[:-1]:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        display = self.nodeid or str(self.path)
        scenarios = load_scenarios(self.path, display)
        registered = self.config.getini("markers")
        for area in sorted({s.area for s in scenarios}):
            if not any(line.split(":")[0] == area for line in registered):
                self.config.addinivalue_line("markers", f"{area}: scenarios of the {area} area")
        session = self.config.stash[SESSION_KEY]
        # One item per endpoint of the run (--transport) and client kind (raw, paho) the scenario takes.
        return [ScenarioItem.from_parent(self, name=s.id + suffix, scenario=s, endpoint_name=endpoint, client_kind=kind)
                for s in scenarios for endpoint, kind, suffix in session.variants(s)]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFileError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


_counter = itertools.count(1)
_run_token = "".join(secrets.choice(_ALNUM) for _ in range(5))


def _unique_client_id() -> str:
    """At most 23 alphanumerics even with a suffix, as MQTT-3.1.3-5 and MQTT 3.1 require."""
    number, digits = next(_counter), ""
    while True:
        number, rest = divmod(number, 36)
        digits = _ALNUM[rest] + digits
        if not number:
            break
    return f"h{_run_token}{digits.rjust(3, '0')}"


def _deviation(deviations: dict[str, str], nodeid: str, endpoint: str | None, kind: str) -> str | None:
    """The deviation's key: the scenario (every variant), or one variant: `...::id[wss]`, `[paho]`, `[wss-paho]`."""
    base = nodeid.split("[", 1)[0]
    for key in (nodeid, f"{base}[{endpoint}-{kind}]", f"{base}[{endpoint}]", f"{base}[{kind}]", base):
        if key in deviations:
            return key
    return None


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, endpoint_name: str | None = None, client_kind: str = "raw", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.endpoint_name = endpoint_name
        self.client_kind = client_kind
        self.add_marker(pytest.mark.scenario)
        self.add_marker(PROTOCOL_MARKERS[scenario.protocol])
        self.add_marker(scenario.area)
        if scenario.uses_timer:
            self.add_marker(pytest.mark.timer)
        self.user_properties.append(("title", scenario.title))
        self.user_properties.append(("refs", ", ".join(scenario.refs)))
        self.user_properties.append(("protocol", scenario.protocol.label))
        self.user_properties.append(("area", scenario.area))
        session = self.config.stash[SESSION_KEY]
        key = _deviation(session.spec.deviations, self.nodeid, endpoint_name, client_kind)
        if key is not None:
            # A recorded deviation must keep failing: if the broker starts to pass, the run says so.
            # An intermittent one (a race in the broker) may pass; a failure of another kind still fails.
            intermittent = key in session.spec.intermittent
            self.add_marker(pytest.mark.xfail(
                reason=f"{INTERMITTENT_PREFIX if intermittent else DEVIATION_PREFIX}{session.spec.name}: "
                       f"{session.spec.deviations[key]}", raises=ScenarioFailed, strict=not intermittent))

    def _skip_reason(self, session: TargetSession) -> str | None:
        if self.scenario.protocol not in session.profile.protocols:
            return f"profile {session.profile.name} does not offer MQTT {self.scenario.protocol.label}"
        reason = session.missing_capabilities(self.scenario)  # requires, and what a 5.0 broker announces it lacks
        if reason:
            return reason
        return session.missing_for(self.scenario, self.endpoint_name, self.client_kind)

    def runtest(self) -> None:
        session = self.config.stash[SESSION_KEY]
        evidence = ScenarioEvidence(self, self.scenario, session)  # Allure labels, steps, pcaps; masks secrets
        evidence.annotate()
        reason = self._skip_reason(session)
        if reason:
            pytest.skip(reason)
        try:
            endpoint = session.endpoint(self.endpoint_name)
        except TargetNotInstalled as exc:  # the broker's software is missing: nothing to check, not a failure
            pytest.skip(str(exc))
        runner = ScenarioRunner(self.scenario, endpoint, _unique_client_id(), timeout=self.config.getoption("mqtt_timeout"),
                                client_kind=self.client_kind)
        with evidence.recording(runner.record, endpoint):
            try:
                runner.run()
            except NeedsRawClient as exc:  # paho validated a value away: not a verdict on the broker
                pytest.skip(f"needs the raw client: {exc}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        error = excinfo.value
        if isinstance(error, ScenarioFailed):
            session = self.config.stash[SESSION_KEY]
            header = f"{self.scenario.title} [MQTT {self.scenario.protocol.label}, target {session.spec.name}, profile {session.profile.name}]"
            return f"{header}\n{error}"
        if isinstance(error, SetupFailed | HarnessError):
            return f"setup error: {error}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.line - 1, f"{self.scenario.id}: {self.scenario.title}"


class _ResultLog:
    """Collects scenario verdicts (on the controller under xdist) and writes the readable summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if "refs" not in properties or not (report.when == "call" or report.outcome != "passed"):
            return
        verdict, detail = _verdict(report)
        self.results[report.nodeid] = {"verdict": verdict, "title": properties.get("title", ""),
                                       "protocol": properties.get("protocol", ""), "area": properties.get("area", ""),
                                       "refs": properties.get("refs", ""), "detail": detail}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        directory = self.config.getoption("report_dir")
        if not directory or hasattr(self.config, "workerinput") or not self.results:
            return
        from harness.summary import write_summary

        target = self.config.stash[SESSION_KEY]
        write_summary(Path(directory), target, self.results)


def _verdict(report: pytest.TestReport) -> tuple[str, str]:
    if hasattr(report, "wasxfail"):
        return ("xfailed" if report.skipped else "xpassed"), str(report.wasxfail)
    if report.skipped:
        return "skipped", str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
    if report.failed:
        return ("failed" if report.when == "call" else "error"), str(report.longrepr)[:4000]
    return "passed", ""
