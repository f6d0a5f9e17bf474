"""The run-level side of reporting, as a pytest plugin object the harness plugin registers.

- baselines: merges `baselines/<target>.yaml` (or `--baseline`) into the target's deviations
  and adds one failing check item when an entry names no existing scenario;
- gating: a run in which every selected scenario was skipped says so in one line (and exits 0:
  nothing failed; a CI that needs checks to have run reads the line or results.json);
- Allure: writes categories.json and environment.properties, and gives a strict XPASS (a
  baselined scenario that now passes) a message, so its category can be told.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from harness.errors import HarnessError
from harness.folders import user_folders
from harness.report.baseline import Stale, default_path, load_baseline, merge, stale_entries
from harness.report.categories import write_categories

XPASS_STRICT = "[XPASS(strict)]"


def apply_baseline(config: pytest.Config, spec: Any) -> tuple[dict[str, str], Path | None]:
    """Merge the target's baseline file into spec.deviations.

    Returns node id -> where it is listed, and the baseline file read (None: the target has none):
    --baseline, else baselines/<target>.yaml in the user's folders, else the built-in one of a
    built-in target (a target the user's targets file redefines is the user's, and so is its baseline)."""
    from harness import suite

    explicit = config.getoption("baseline", None)
    builtin = spec.defined_in is not None and spec.defined_in.resolve() == suite.TARGETS_FILE.resolve()
    path = Path(explicit) if explicit else default_path(user_folders(config), spec.name, builtin)
    sources = dict.fromkeys(spec.deviations, f"{spec.source}.deviations")
    if path is None:
        return sources, None
    baseline = load_baseline(path, spec.name)
    shown = _shown(path, config.rootpath)
    spec.deviations = merge(spec.deviations, baseline.reasons, shown)
    spec.intermittent = set(baseline.intermittent)
    sources.update(dict.fromkeys(baseline.reasons, shown))
    return sources, path


def _shown(path: Path, root: Path) -> str:
    from harness.targets import shown_path

    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return shown_path(path)


class BaselineCheck(pytest.Item):
    """Fails when a baseline entry names no scenario: a stale entry would otherwise hide nothing, silently."""

    def __init__(self, *, stale: list[Stale], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stale = stale

    def runtest(self) -> None:
        lines = [f"{s.source}: {s.nodeid}: {s.problem}" for s in self.stale]
        raise HarnessError("baseline entries that name no scenario (remove or fix them):\n" + "\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class ReportHooks:
    def __init__(self, config: pytest.Config, sessions: list[Any], baseline_sources: dict[str, dict[str, str]]) -> None:
        self.config = config
        self.sessions = sessions
        self.baseline_sources = baseline_sources  # target name -> node id -> file listing it
        self.scenario_reports = 0
        self.skipped = 0
        self.no_scenario_message = ""
        self.broken_files: set[str] = set()

    # -- baselines -----------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)  # after -k/-m deselection: the check runs whatever was selected
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not any(hasattr(item, "scenario") for item in items):
            return  # not a conformance run (e.g. the project's own tests)
        for target, sources in self.baseline_sources.items():
            stale: list[Stale] = []
            for source in sorted(set(sources.values())):
                stale += stale_entries({n: "" for n, s in sources.items() if s == source}, user_folders(config), source)
            if stale:
                items.append(BaselineCheck.from_parent(session, name=f"baseline[{target}]", stale=stale))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A scenario file that cannot be loaded is an Allure result too: a broken one, a setup error."""
        if not report.failed or report.nodeid in self.broken_files or not report.nodeid.endswith((".yaml", ".yml")):
            return
        self.broken_files.add(report.nodeid)  # under xdist every worker reports the same file
        if hasattr(self.config, "workerinput"):
            return  # the controller writes it, once
        listener = self.config.pluginmanager.get_plugin("allure_listener")
        if listener is None:
            return
        from allure_commons.model2 import Label, Status, StatusDetails, TestResult
        from allure_commons.utils import md5, now, uuid4

        uuid, stamp = uuid4(), now()
        listener.allure_logger.schedule_test(uuid, TestResult(
            uuid=uuid, name=f"scenario file {report.nodeid} cannot be used", fullName=report.nodeid,
            historyId=md5(report.nodeid), testCaseId=md5(report.nodeid), status=Status.BROKEN, start=stamp, stop=stamp,
            statusDetails=StatusDetails(message=f"setup error: {report.longreprtext}"),
            labels=[Label("parentSuite", ", ".join(s.spec.name for s in self.sessions)), Label("suite", "scenario files"),
                    Label("severity", "critical")]))
        listener.allure_logger.close_test(uuid)

    # -- per test ------------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "refs" not in dict(report.user_properties):
            return
        skipped = report.skipped and not hasattr(report, "wasxfail")
        if report.when == "call":
            self.scenario_reports += 1
            self.skipped += skipped
            if report.failed and str(report.longrepr).startswith(XPASS_STRICT):
                self._allure_message(str(report.longrepr))
        elif report.when == "setup" and not report.passed:
            self.scenario_reports += 1
            self.skipped += skipped

    def _allure_message(self, message: str) -> None:
        listener = self.config.pluginmanager.get_plugin("allure_listener")
        if listener is None:
            return
        from allure_commons.model2 import StatusDetails

        test = listener.allure_logger.get_test(None)
        if test is not None and test.statusDetails is None:
            test.statusDetails = StatusDetails(message=message + "\nthe target's baseline lists this scenario, "
                                                             "but it passed: remove the entry so the baseline shrinks")

    # -- end of run ----------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return
        results = getattr(self.config.option, "allure_report_dir", None)
        if results:
            write_categories(Path(results))
            write_environment(Path(results), self.sessions)
        if self.scenario_reports and self.skipped == self.scenario_reports:
            self.no_scenario_message = (f"all {self.scenario_reports} selected scenarios were skipped: nothing was "
                                        "checked against the target (see the skip reasons: pytest -rs)")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.no_scenario_message:
            terminalreporter.write_line(self.no_scenario_message, yellow=True, bold=True)


def environment(sessions: list[Any]) -> dict[str, str]:
    """What environment.properties says: each target, where it is (no credentials), its version and profile."""
    import harness

    values: dict[str, str] = {}
    for session in sessions:
        spec = session.spec
        prefix = "target" if len(sessions) == 1 else f"target.{spec.name}"
        if len(sessions) == 1:
            values["target"] = spec.name
        endpoint = getattr(session, "_endpoint", None)
        if spec.url:
            values[f"{prefix}.url"] = url_without_credentials(spec.url)
        elif endpoint is not None:
            values[f"{prefix}.url"] = f"mqtt://{endpoint.host}:{endpoint.port} (launched by the harness: {spec.launch})"
        else:
            values[f"{prefix}.url"] = f"launched by the harness: {spec.launch}"
        values[f"{prefix}.version"] = getattr(session, "version", None) or "not reported"
        values[f"{prefix}.profile"] = session.profile.name
    if len(sessions) > 1:
        values["targets"] = ", ".join(s.spec.name for s in sessions)
    values["harness.version"] = getattr(harness, "__version__", "unknown")
    values["python"] = platform.python_version()
    values["pytest"] = pytest.__version__
    return values


def url_without_credentials(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def _escape(text: str) -> str:
    # .properties: backslash escapes, and ':'/'=' in keys; values may hold them after the first '='.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def write_environment(results_dir: Path, sessions: list[Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "environment.properties"
    lines = [f"{key.replace(':', '_').replace('=', '_')}={_escape(value)}" for key, value in environment(sessions).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
