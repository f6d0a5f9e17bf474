"""The pytest plugin: every scenario in a scenario file becomes one test item.

A scenario file is a YAML file below a folder named `scenarios`, or one with a top-level
`scenarios:` key. The built-in suite (harness/suite/scenarios) joins the run when no path is named
and the folder has no scenarios/ of its own (`--suite auto`), always (`--suite builtin`) or never
(`--suite none`); its node ids are `scenarios/<file>.yaml::<scenario id>` wherever the package is
installed, and such a node id on the command line selects a built-in scenario from any folder.
Items are marked with their protocol version (`mqtt31`, `mqtt311`, `mqtt5`) and their area
(`connect`, ...) so `-m` and `-k` select. The target is chosen by `--broker URL`, `--target NAME`
(the built-in targets and the user's targets.yaml) or the files' default, and a launched target is
started once, by the xdist controller when there is one.
"""

import contextlib
import itertools
import os
import re
import secrets
import shutil
import signal
import string
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import suite
from harness.clients.paho import NeedsRawClient
from harness.errors import HarnessError, ScenarioFileError
from harness.folders import WORKER_KEY as FOLDERS_KEY
from harness.folders import user_folders
from harness.liveness import TargetNotAlive, check_alive
from harness.pipeline import DEFAULT_WIDTH, BrokerLock, Job, Pipeline, width_for_descriptors
from harness.preflight import PREFLIGHT_FAILED, preflight
from harness.report.categories import DEVIATION_PREFIX, INTERMITTENT_PREFIX
from harness.report.evidence import ScenarioEvidence
from harness.report.hooks import ReportHooks, apply_baseline
from harness.scenarios.model import Scenario, load_scenarios
from harness.scenarios.runner import Endpoint, RunRecord, ScenarioFailed, ScenarioRunner, SetupFailed
from harness.scenarios.sharing import alone_reason
from harness.targets import (
    TargetNotInstalled,
    TargetSession,
    TargetSpec,
    check_tls,
    load_targets,
    shown_path,
    target_from_table,
    target_from_url,
    user_targets_file,
)
from harness.targets.profiles import load_profile, user_profile_dirs
from harness.wire import Version

PROTOCOL_MARKERS = {Version.V31: "mqtt31", Version.V311: "mqtt311", Version.V5: "mqtt5"}
SESSION_KEY = pytest.StashKey[TargetSession]()
SOURCES_KEY = pytest.StashKey["RunSources"]()
CONCURRENCY_KEY = pytest.StashKey["_Concurrency"]()
LOCK_DIR_KEY = "mqtt_lock_dir"  # workerinput: the folder of the run's BrokerLock
SUITE_MODES = ("auto", "builtin", "none")
_PACKAGE_DIR = Path(harness.__file__).resolve().parent
_SCENARIOS_KEY = re.compile(r"^scenarios\s*:", re.MULTILINE)
_ALNUM = string.ascii_lowercase + string.digits


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mqtt", "MQTT conformance harness")
    group.addoption("--broker", metavar="URL", help="run scenarios against this broker: mqtt://[user:pass@]host:port")
    group.addoption("--target", metavar="NAME", help="run scenarios against this entry of targets.yaml")
    group.addoption("--profile", metavar="NAME", help="override the target's profile (default: strict)")
    group.addoption("--targets-file", metavar="PATH",
                    help="targets file whose entries extend the built-in ones (default: targets.yaml in the current "
                         "folder, else in the rootdir, if any)")
    group.addoption("--suite", choices=SUITE_MODES, default="auto",
                    help="the built-in scenario suite: auto (when no path is named and the folder has no scenarios/), "
                         "builtin (always, next to any paths named) or none (default: auto)")
    group.addoption("--no-preflight", action="store_true", default=False,
                    help="do not check before the first scenario that the target serves CONNECT and PINGREQ "
                         "for each protocol version its profile claims (a failed check stops the run, exit code 6)")
    group.addoption("--keepalive-grace", type=float, default=None, metavar="SECONDS",
                    help="seconds past a protocol timer (1.5 x Keep Alive, a platform's idle limit) a broker may take "
                         "to act; overrides the target's keepalive_grace setting (default: the profile's, 1 for strict)")
    group.addoption("--concurrency", type=int, default=None, metavar="N",
                    help=f"scenarios in flight at once in each pytest process, so their timer waits overlap; 1 runs "
                         f"them one after another (default {DEFAULT_WIDTH}); those that need the broker to themselves "
                         "run alone")
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
                    help="the target's expected failures (default: baselines/<target>.yaml in the current folder or "
                         "the rootdir, else the built-in one of a built-in target)")


@dataclass(frozen=True)
class RunSources:
    """Where the run's target, profile and baseline were read from, for the header and environment."""

    target: str
    profile: str
    baseline: str

    def header_line(self, spec: TargetSpec, profile_name: str) -> str:
        return (f"mqtt-conformance-harness {harness.__version__}: target {spec.name} ({self.target}), "
                f"profile {profile_name} ({self.profile}), baseline: {self.baseline}")


def _target_spec(config: pytest.Config) -> tuple[TargetSpec, str]:
    """The run's target and where it is defined."""
    broker, target = config.getoption("broker"), config.getoption("target")
    if broker and target:
        raise HarnessError("give --broker or --target, not both")
    if broker:
        spec = target_from_url(broker)
        where = "--broker"
    else:
        table = load_targets(user_targets_file(user_folders(config), config.getoption("targets_file")))
        spec = target_from_table(table, target)
        where = f"from {_shown(table.origin[spec.name], config)}"
    cli = {key: config.getoption(f"tls_{option}") for key, option in
           (("ca_file", "ca"), ("cert_file", "cert"), ("key_file", "key"), ("server_name", "server_name"),
            ("min_version", "min_version"), ("insecure", "insecure"))}
    spec.tls.update(check_tls({k: v for k, v in cli.items() if v is not None}, "--tls"))  # command line wins
    grace = config.getoption("keepalive_grace")
    if grace is not None:
        if grace < 0:
            raise HarnessError(f"--keepalive-grace: expected seconds of 0 or more, got {grace:g}")
        spec.settings["keepalive_grace"] = grace
    return spec, where


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _default_report_options(config)
    _interrupt_on_sigterm(config)
    _quiet_benchmark_under_xdist(config)
    _add_builtin_suite(config)
    # A bad scenario file is one collection error; the other files must still run.
    config.option.continue_on_collection_errors = True
    for marker in PROTOCOL_MARKERS.values():
        config.addinivalue_line("markers", f"{marker}: scenario for that MQTT protocol version")
    config.addinivalue_line("markers", "scenario: an MQTT conformance scenario from a YAML file")
    config.addinivalue_line("markers", "timer: a scenario that waits on a protocol timer (keepalive, expiry)")
    config.addinivalue_line("markers", "alone: a scenario that needs the broker to itself (runs with nothing else in flight)")
    try:
        spec, target_source = _target_spec(config)
        profile = load_profile(config.getoption("profile") or spec.profile, user_profile_dirs(user_folders(config)))
        baseline_sources, baseline_file = apply_baseline(config, spec)  # baselines/<target>.yaml joins its deviations
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SOURCES_KEY] = RunSources(target_source, _shown(profile.path, config), _shown(baseline_file, config))
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
    lock_dir = _set_up_concurrency(config, worker_input)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session, user_folders(config), lock_dir), "mqtt-harness-xdist")
    if worker_input is None:  # the controller (or a run without xdist) checks once, before any worker starts
        config.pluginmanager.register(_Preflight(), "mqtt-harness-preflight")
    config.pluginmanager.register(_ResultLog(config), "mqtt-harness-results")
    config.pluginmanager.register(ReportHooks(config, [session], {spec.name: baseline_sources}), "mqtt-harness-report")


def _set_up_concurrency(config: pytest.Config, worker_input: dict[str, Any] | None) -> str | None:
    """The pipeline of the process that runs scenarios; the xdist controller instead makes the folder of the
    lock its workers share (returned, for their workerinput), so an alone scenario has the broker to itself."""
    width = config.getoption("concurrency")
    if width is not None and width < 1:
        raise pytest.UsageError(f"--concurrency: expected 1 or more scenarios in flight, got {width}")
    if _xdist_active(config):
        lock_dir = tempfile.mkdtemp(prefix="mqtt-harness-lock-")
        config.add_cleanup(partial(shutil.rmtree, lock_dir, ignore_errors=True))
        return lock_dir
    lock_dir = worker_input.get(LOCK_DIR_KEY) if worker_input is not None else None
    concurrency = _Concurrency(width_for_descriptors(width or _target_width(config)), BrokerLock(Path(lock_dir) if lock_dir else None))
    config.stash[CONCURRENCY_KEY] = concurrency
    config.pluginmanager.register(concurrency, "mqtt-harness-concurrency")
    return lock_dir


def _target_width(config: pytest.Config) -> int:
    """The default concurrency, or less where the target's settings say it takes fewer clients at once
    (`settings: {concurrency: 8}`, for a broker whose sessions break under load)."""
    session = config.stash[SESSION_KEY]
    limit = session.settings.get("concurrency")
    if limit is None:
        return DEFAULT_WIDTH
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise pytest.UsageError(f"target {session.spec.name}: setting concurrency: expected a whole number of 1 or more, "
                                f"got {limit!r}")
    return min(DEFAULT_WIDTH, limit)


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return []
    width = config.getoption("concurrency") or _target_width(config)
    concurrency = (f"scenarios in flight: up to {width} per process, fewer while it is short of CPU; those that need "
                   "the broker to themselves run alone" if width > 1 else "scenarios in flight: one at a time")
    if session.broker_per_worker and _xdist_active(config):
        concurrency += (f"; every scenario runs alone (profile {session.profile.name}), so each xdist worker has "
                        f"a {session.spec.launch} broker of its own")
    return [config.stash[SOURCES_KEY].header_line(session.spec, session.profile.name), *session.header_lines(), concurrency]


def _interrupt_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (a CI time-out, `kill`) ends the run as Ctrl-C does, so pytest unwinds and the brokers the
    harness launched are stopped and their folders removed; by default Python would die on the spot."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def _shown(path: Path | None, config: pytest.Config) -> str:
    """A file the run read, for the header: package data as `built-in harness/...`, the user's relative to
    where pytest was started when below it."""
    if path is None:
        return "none"
    shown = shown_path(path)
    if not shown.startswith("built-in"):
        with contextlib.suppress(ValueError):
            return path.absolute().relative_to(config.invocation_params.dir).as_posix()
    return shown


def _quiet_benchmark_under_xdist(config: pytest.Config) -> None:
    """pytest-benchmark disables itself under xdist and warns about it in every run: disable it first."""
    xdist_active = getattr(config.option, "dist", "no") != "no" or os.environ.get("PYTEST_XDIST_WORKER")
    if xdist_active and hasattr(config.option, "benchmark_disable") and not config.option.benchmark_enable:
        config.option.benchmark_disable = True


def _add_builtin_suite(config: pytest.Config) -> None:
    """Point built-in node ids at the package's files, and add the built-in suite as --suite says."""
    invocation = config.invocation_params.dir
    config.args[:] = [_builtin_argument(arg, invocation) for arg in config.args]
    mode = config.getoption("suite")
    if mode == "none" or not suite.SCENARIOS.is_dir():
        return
    if mode == "auto" and (config.args_source != pytest.Config.ArgsSource.INVOCATION_DIR
                           or (invocation / suite.SCENARIO_DIR_NAME).is_dir()):
        return
    builtin = suite.SCENARIOS.resolve()
    for arg in config.args:
        path = (invocation / arg.split("::", 1)[0]).resolve()
        if path == builtin or path.is_relative_to(builtin) or builtin.is_relative_to(path):
            return  # already in the run (a clone's own scenarios/ are the built-in suite), or a part of it chosen
    config.args.append(str(suite.SCENARIOS))


def _builtin_argument(arg: str, invocation: Path) -> str:
    """`scenarios/mqtt311/connect.yaml::id` names a built-in scenario when no such file is here."""
    path_text, sep, rest = arg.partition("::")
    if (invocation / path_text).exists():
        return arg
    builtin = suite.builtin_path(path_text)
    return f"{builtin}{sep}{rest}" if builtin is not None else arg


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


class _Preflight:
    """Checks the target before the first scenario (harness.preflight) and stops the run if it is unusable.

    Under xdist the controller checks at session start, before any worker is set up (it starts the
    target for them then anyway); without xdist, once the items are known, if any is a scenario, so a
    run of other tests never starts a broker for nothing."""

    def __init__(self) -> None:
        self.stopped = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if _xdist_active(session.config):
            self._check(session.config, announce=False)  # pytest prints "Exit: <problem>" on stderr

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if not _xdist_active(session.config) and any(isinstance(item, ScenarioItem) for item in session.items):
            self._check(session.config, announce=True)

    def _check(self, config: pytest.Config, announce: bool) -> None:
        if config.option.collectonly or config.getoption("no_preflight"):
            return
        problem = preflight(config.stash[SESSION_KEY])
        if problem is None:
            return
        self.stopped = True
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if announce and reporter is not None:
            reporter.write_line(problem, red=True, bold=True)
        pytest.exit(problem, returncode=PREFLIGHT_FAILED)

    @pytest.hookimpl(tryfirst=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # The terminal reporter would say the same line again, as "!!! _pytest.outcomes.Exit: ... !!!".
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if self.stopped and getattr(reporter, "_keyboardinterrupt_memo", None) is not None:
            reporter._keyboardinterrupt_memo = None


def _xdist_active(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")


class _XdistHooks:
    def __init__(self, session: TargetSession, folders: list[Path], lock_dir: str | None) -> None:
        self.session = session
        self.folders = folders
        self.lock_dir = lock_dir
        self.twins: list[TargetSession] = []  # the brokers of the other workers, when each has its own
        self.configured = 0

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        # The controller starts the broker once and hands its address to every worker, and its user
        # folders: a worker's own rootdir may differ (harness.folders). A broker that takes one scenario
        # at a time is started once per worker instead: the first worker takes the controller's (the one
        # the preflight checked), every other one a twin's. Each worker then has its broker to itself,
        # so its own pipeline orders its scenarios and no lock is shared.
        session, lock_dir = self.session, self.lock_dir
        if self.session.broker_per_worker:
            if self.configured:
                session = self.session.twin()
                self.twins.append(session)
            self.configured += 1
            lock_dir = None
        node.workerinput["mqtt_target"] = session.export()
        node.workerinput[FOLDERS_KEY] = [str(folder) for folder in self.folders]
        node.workerinput[LOCK_DIR_KEY] = lock_dir

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for twin in self.twins:
            twin.stop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the controller hands out items in collection order, a few at a time: a worker's pipeline
    can only start what it was given. So on the workers (each sorts alike; xdist reports in its own order
    anyway) the scenarios that run alone come first, then those that wait on timers, then the rest."""
    concurrency = config.stash.get(CONCURRENCY_KEY, None)
    if not hasattr(config, "workerinput") or concurrency is None or concurrency.pipeline.width == 1:
        return
    items.sort(key=lambda item: (not getattr(item, "alone", None),
                                 not (isinstance(item, ScenarioItem) and item.scenario.uses_timer)))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # The package's own folder holds the built-in suite (in a clone, a link to scenarios/): walking into
    # it would collect every scenario twice. Named on the command line or added by --suite, it is not walked.
    if collection_path.name == _PACKAGE_DIR.name and collection_path.resolve() == _PACKAGE_DIR:
        return True
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml") or not _is_scenario_file(file_path):
        return None
    nodeid = suite.builtin_nodeid(file_path)  # the same node id in a clone and installed
    if nodeid is not None:
        return ScenarioFile.from_parent(parent, path=file_path, nodeid=nodeid)
    return ScenarioFile.from_parent(parent, path=file_path)


def _is_scenario_file(path: Path) -> bool:
    """Below a folder named scenarios (even when broken: that is its collection error), or a top-level `scenarios:`."""
    if suite.SCENARIO_DIR_NAME in path.parts[:-1]:
        return True
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            return _SCENARIOS_KEY.search(stream.read(1 << 20)) is not None
    except OSError:
        return False


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
        session = self.config.stash[SESSION_KEY]
        # Why it needs the broker to itself when scenarios run concurrently (None: it may run beside others).
        self.alone = alone_reason(scenario, session.settings, session.profile.name, session.profile.run_alone)
        if self.alone:
            self.add_marker(pytest.mark.alone)
        self._job: Job | None = None
        self._outcome: _Outcome | None = None  # known before any run: a skip, or a setup error
        self.user_properties.append(("title", scenario.title))
        self.user_properties.append(("refs", ", ".join(scenario.refs)))
        self.user_properties.append(("protocol", scenario.protocol.label))
        self.user_properties.append(("area", scenario.area))
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

    def job(self) -> Job | None:
        """The scenario's run as a pipeline job, prepared on pytest's thread (the target's endpoint, a fresh
        ClientId); None when it cannot run, its outcome (a skip or a setup error) then known already."""
        if self._job is not None or self._outcome is not None:
            return self._job
        session = self.config.stash[SESSION_KEY]
        try:
            reason = self._skip_reason(session)
            if reason:
                self._outcome = _Outcome(skip=reason)
                return None
            endpoint = session.endpoint(self.endpoint_name)
        except TargetNotInstalled as exc:  # the broker's software is missing: nothing to check, not a failure
            self._outcome = _Outcome(skip=str(exc))
            return None
        except HarnessError as exc:
            self._outcome = _Outcome(error=exc)
            return None
        runner = ScenarioRunner(self.scenario, endpoint, _unique_client_id(), timeout=self.config.getoption("mqtt_timeout"),
                                client_kind=self.client_kind)
        self._job = Job(self.nodeid, partial(self._execute, runner, endpoint, session.spec.name), alone=bool(self.alone),
                        long=self.scenario.uses_timer)
        return self._job

    def _execute(self, runner: ScenarioRunner, endpoint: Endpoint, target: str) -> "_Outcome":
        """The run itself, on a pipeline thread: nothing here may touch pytest or the report."""
        outcome = _Outcome(record=runner.record, endpoint=endpoint)
        started = time.monotonic()
        try:
            runner.run()
            if self.scenario.rests_on_absence:
                # A broker that closes every connection passes "a malformed CONNECT is closed": such a pass
                # counts only if the broker still serves a well-behaved client right after it.
                problem = check_alive(endpoint.address, self.scenario.protocol, endpoint.accounts.get("default"),
                                      timeout=self.config.getoption("mqtt_timeout"))
                if problem is not None:
                    outcome.error = TargetNotAlive(f"target {target} was not alive right after this scenario, whose "
                                                   f"checks rest on the broker closing or refusing: {problem}")
        except NeedsRawClient as exc:  # paho validated a value away: not a verdict on the broker
            outcome.skip = f"needs the raw client: {exc}"
        except (ScenarioFailed, SetupFailed) as exc:
            outcome.error = exc
        finally:
            outcome.branch = runner.record.branch()
            outcome.duration = time.monotonic() - started
        return outcome

    def runtest(self) -> None:
        session = self.config.stash[SESSION_KEY]
        evidence = ScenarioEvidence(self, self.scenario, session)  # Allure labels, steps, pcaps; masks secrets
        evidence.annotate()
        outcome = self.config.stash[CONCURRENCY_KEY].outcome(self)
        self._job = self._outcome = None  # a rerun (pytest-rerunfailures) runs the scenario again
        if outcome.record is None:  # it never ran
            if outcome.skip:
                pytest.skip(outcome.skip)
            raise outcome.error or HarnessError("the scenario did not run")
        self.ran_for = outcome.duration
        with evidence.recording(outcome.record, outcome.endpoint):
            try:
                if outcome.skip:
                    pytest.skip(outcome.skip)
                if isinstance(outcome.error, ScenarioFailed | SetupFailed):
                    raise outcome.error
            finally:
                # Where the scenario accepts several outcomes, which one the broker took (summary, Allure, compare).
                if outcome.branch:
                    self.user_properties.append(("branch", outcome.branch))
                    evidence.branch(outcome.branch)
        if outcome.error is not None:
            raise outcome.error

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


@dataclass
class _Outcome:
    """What became of one scenario: its record (None: it never ran), a skip, an error to raise."""

    record: RunRecord | None = None
    endpoint: Endpoint | None = None
    skip: str | None = None
    error: BaseException | None = None
    branch: str = ""
    duration: float | None = None


class _Concurrency:
    """Keeps the pipeline (harness.pipeline) fed with the scenarios pytest will run next in this process,
    and gives each test its own scenario's outcome. With --concurrency 1 each runs when its test does."""

    def __init__(self, width: int, lock: BrokerLock) -> None:
        self.pipeline = Pipeline(width, lock)
        self._worker: Any = None  # xdist's WorkerInteractor in a worker, found at the first scenario
        self._looked_for_worker = False
        self._offered_all = False  # without xdist the session's items are the run: offered once

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if self.pipeline.width == 1 or not isinstance(item, ScenarioItem) or self._offered_all:
            return
        worker = self._xdist_worker(item.config)
        if worker is None:
            items = item.session.items
            upcoming = items[items.index(item):]
            self._offered_all = True
        else:  # the worker's queue, which the controller can take items back from
            with worker.torun.lock() as queue:
                indices = [worker.nextitem_index, *queue]
            upcoming = [item] + [item.session.items[i] for i in indices if isinstance(i, int)]
        jobs = [job for candidate in upcoming if isinstance(candidate, ScenarioItem) and (job := candidate.job())]
        self.pipeline.offer(jobs, None if worker is None else {job.key for job in jobs})

    def _xdist_worker(self, config: pytest.Config) -> Any:
        if not self._looked_for_worker:
            self._looked_for_worker = True
            self._worker = next((p for p in config.pluginmanager.get_plugins()
                                 if type(p).__name__ == "WorkerInteractor" and hasattr(p, "torun")), None)
        return self._worker

    def outcome(self, item: "ScenarioItem") -> _Outcome:
        job = item.job()
        if job is None:
            assert item._outcome is not None
            return item._outcome
        if not self.pipeline.knows(job.key):
            self.pipeline.offer([job])
        return self.pipeline.take(job.key)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        ran_for = getattr(item, "ran_for", None)
        if call.when == "call" and ran_for is not None:
            report.duration = ran_for  # the scenario's own time, not how long its test waited for it
        return report

    def pytest_sessionfinish(self) -> None:
        self.pipeline.close()


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
                                       "refs": properties.get("refs", ""), "detail": detail,
                                       **({"branch": properties["branch"]} if properties.get("branch") else {})}

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
