"""The harness as a user gets it: a wheel installed into a fresh virtualenv, run from an empty folder.

One module-scoped build: `python -m build` makes the sdist and, from it, the wheel (so the sdist
builds); the wheel goes into a new virtualenv without this checkout's packages; the sdist installs
too. From an empty temporary folder the installed harness then runs the built-in suite against

- the reference broker, started with the installed `python -m harness.broker` and given by URL, and
- a harness-launched mosquitto, named in a targets.yaml of that folder (the user's file extending
  the built-in targets),

and every verdict must equal this checkout's run against the same broker, scenario by scenario.
`harness report` and `harness compare` then work on those results from the same folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import suite

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 600  # build isolation and the virtualenv fetch packages from the registry
RUN_TIMEOUT_S = 600
USER, PASSWORD = "harness", "harness-secret"
RESTRICTED_USER, RESTRICTED_PASSWORD = "restricted", "restricted-secret"


def _run(command: list[str], *, cwd: Path, timeout: float = RUN_TIMEOUT_S, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or _clean_env())
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _clean_env() -> dict[str, str]:
    # The outer run's pytest/xdist variables must not reach the inner runs; neither may this checkout.
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("PYTEST_", "COV_", "PYTHONPATH", "VIRTUAL_ENV"))}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # One build at a time: under xdist each worker builds, and setuptools writes its egg-info into the
    # checkout, so two at once can break each other. The lock file is in the run's shared temp folder.
    with open(tmp_path_factory.getbasetemp().parent / "package-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT, timeout=BUILD_TIMEOUT_S)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def installed(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; its bin/ folder."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=True, clear=True)
    bin_dir = env_dir / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(dist["wheel"])],
         cwd=env_dir, timeout=BUILD_TIMEOUT_S)
    return bin_dir


@pytest.fixture()
def empty_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def reference_url(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The installed package's reference broker on a free port, with the harness's two accounts."""
    workdir = tmp_path_factory.mktemp("reference")
    config = workdir / "broker.yaml"
    config.write_text(textwrap.dedent(f"""\
        auth: {{allow_anonymous: false, users: {{{USER}: {PASSWORD}, {RESTRICTED_USER}: {RESTRICTED_PASSWORD}}}}}
        acl:
          - {{user: {USER}, allow: [{{topic: "#", access: readwrite}}]}}
          - {{user: {RESTRICTED_USER}, allow: [{{topic: "acl/allowed/#", access: readwrite}}]}}
        """), encoding="utf-8")
    process = subprocess.Popen([str(installed / "python"), "-m", "harness.broker", "--config", str(config),
                                "--listen", "127.0.0.1:0"], cwd=workdir, stderr=subprocess.PIPE, text=True,
                               env=_clean_env())
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"ready.*?127\.0\.0\.1:(\d+)", line)
            if found:
                break
        else:
            pytest.fail("the installed reference broker exited without its ready line")
        # Keep reading its log: a full pipe would block the broker at its next log line (the fuzz
        # scenarios' malformed packets log plenty), and every scenario after that would fail.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _verdicts(report_dir: Path) -> dict[str, str]:
    results = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))["results"]
    return {nodeid: r["verdict"] for nodeid, r in results.items()}


def _builtin_nodeids() -> set[str]:
    from harness.scenarios.model import load_scenarios

    return {f"{suite.builtin_nodeid(path)}::{s.id}" for path in suite.scenario_files() for s in load_scenarios(path)}


def _scenarios_of(verdicts: dict[str, str]) -> set[str]:
    """Node ids without the variant suffix (`...::id[paho]`)."""
    return {nodeid.split("[", 1)[0] for nodeid in verdicts}


def _pytest_in_clone(report_dir: Path, *options: str, env: dict[str, str] | None = None) -> None:
    done = _run([sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:cacheprovider", "--report-dir",
                 str(report_dir), *options], cwd=ROOT, check=False, env=env)
    assert (report_dir / "results.json").is_file(), done.stdout[-3000:] + done.stderr[-3000:]


def _pytest_installed(bin_dir: Path, folder: Path, report_dir: Path, *options: str,
                      env: dict[str, str] | None = None) -> str:
    """The installed harness's pytest in `folder`, without -q: the header is part of what is checked."""
    done = _run([str(bin_dir / "python"), "-m", "pytest", "-p", "no:cacheprovider", "--report-dir", str(report_dir),
                 *options], cwd=folder, check=False, env=env)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
    assert (report_dir / "results.json").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _differences(installed: dict[str, str], clone: dict[str, str]) -> list[str]:
    return [f"{nodeid}: installed {installed.get(nodeid)}, clone {clone.get(nodeid)}"
            for nodeid in sorted(set(installed) | set(clone)) if installed.get(nodeid) != clone.get(nodeid)]


def test_the_wheel_carries_the_whole_built_in_suite(dist: dict[str, Path]) -> None:
    import zipfile

    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    expected = {f"harness/suite/{suite.builtin_nodeid(p)}" for p in suite.scenario_files()}
    assert expected <= names, sorted(expected - names)[:5]
    for data in ("harness/suite/targets.yaml", "harness/suite/baselines/mosquitto.yaml",
                 "harness/suite/coverage/mqtt-5.0.yaml", "harness/profiles/strict.yaml",
                 "harness/scenarios/schema.json", "harness/spec/mqtt-5.0-statements.tsv"):
        assert data in names
    with tarfile.open(dist["sdist"]) as sdist:  # the link became the files themselves
        members = {m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name}
    assert expected <= {name for name, m in members.items() if m.isfile()}


def test_the_sdist_installs(dist: dict[str, Path], installed: Path, tmp_path: Path) -> None:
    target = tmp_path / "from-sdist"
    _run([str(installed / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
          "--target", str(target), str(dist["sdist"])], cwd=tmp_path, timeout=BUILD_TIMEOUT_S)
    shipped = {p.relative_to(target / "harness" / "suite").as_posix() for p in (target / "harness" / "suite").rglob("*.yaml")}
    assert {suite.builtin_nodeid(p) for p in suite.scenario_files()} <= shipped


def test_the_commands_say_their_version_and_what_is_built_in(installed: Path, empty_folder: Path) -> None:
    import harness

    assert _run([str(installed / "harness"), "--version"], cwd=empty_folder).stdout.strip().endswith(harness.__version__)
    listing = _run([str(installed / "harness"), "list"], cwd=empty_folder).stdout
    assert f"built-in scenarios: {len(_builtin_nodeids())} in {len(suite.scenario_files())} files" in listing
    assert "  mosquitto " in listing and "built-in harness/suite/targets.yaml" in listing
    assert "  strict " in listing and "built-in harness/profiles/strict.yaml" in listing


@pytest.fixture(scope="module")
def reference_runs(installed: Path, reference_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The built-in suite against the installed reference broker by URL: from an empty folder with the
    installed harness, and from this checkout; each run's report directory."""
    base = tmp_path_factory.mktemp("reference-runs")
    folder = base / "user"
    folder.mkdir()
    stdout = _pytest_installed(installed, folder, base / "installed", "--broker", reference_url, "-n", "2")
    _pytest_in_clone(base / "clone", "--broker", reference_url, "-n", "2")
    assert list(folder.iterdir()) == [], "a run wrote into the folder it ran from"  # reports go to --report-dir
    return {"installed": base / "installed", "clone": base / "clone", "stdout": stdout}


@pytest.fixture(scope="module")
def mosquitto_runs(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The built-in suite against a launched mosquitto named in the user's targets.yaml, installed and clone."""
    from harness.launch import BrokerNotInstalled, launch

    base = tmp_path_factory.mktemp("mosquitto-runs")
    try:
        broker = launch("mosquitto", base / "mosquitto")
    except BrokerNotInstalled as exc:
        pytest.skip(str(exc))
    try:
        folder = base / "user"
        folder.mkdir()
        (folder / "targets.yaml").write_text(textwrap.dedent(f"""\
            targets:
              my-mosquitto:
                url: mqtt://{broker.host}:{broker.port}
                accounts:
                  default: {{username: {{env: MY_MQTT_USER}}, password: {{env: MY_MQTT_PASSWORD}}}}
                  restricted: {{username: {{env: MY_MQTT_RO_USER}}, password: {{env: MY_MQTT_RO_PASSWORD}}}}
                capabilities: {{anonymous_refused: true, zero_length_client_id: true}}
                settings: {{keepalive_grace: 6}}   # mosquitto sweeps Keep Alive every 5 s
            """), encoding="utf-8")
        accounts = broker.accounts
        env = {**_clean_env(), "MY_MQTT_USER": accounts["default"].username, "MY_MQTT_PASSWORD": accounts["default"].password,
               "MY_MQTT_RO_USER": accounts["restricted"].username, "MY_MQTT_RO_PASSWORD": accounts["restricted"].password}
        # Four workers: these runs mostly wait on mosquitto's Keep Alive sweep.
        stdout = _pytest_installed(installed, folder, base / "installed", "--target", "my-mosquitto", "-n", "4", env=env)
        _pytest_in_clone(base / "clone", "--targets-file", str(folder / "targets.yaml"), "--target", "my-mosquitto",
                         "-n", "4", env=env)
        yield {"installed": base / "installed", "clone": base / "clone", "stdout": stdout, "folder": folder}
    finally:
        broker.stop()


def test_the_built_in_suite_by_url_gives_the_verdicts_of_the_clone(reference_runs: dict[str, Any]) -> None:
    installed = _verdicts(reference_runs["installed"])
    assert _scenarios_of(installed) == _builtin_nodeids()  # every built-in scenario, nothing else
    assert "passed" in set(installed.values())
    assert _differences(installed, _verdicts(reference_runs["clone"])) == []


def test_a_users_targets_file_runs_the_built_in_suite_against_mosquitto_as_the_clone_does(
    mosquitto_runs: dict[str, Any]
) -> None:
    import harness

    header = (f"mqtt-conformance-harness {harness.__version__}: target my-mosquitto "
              "(from targets.yaml), profile strict (built-in harness/profiles/strict.yaml), "
              "baseline: none")
    assert header in mosquitto_runs["stdout"]
    installed = _verdicts(mosquitto_runs["installed"])
    assert _scenarios_of(installed) == _builtin_nodeids()
    assert _differences(installed, _verdicts(mosquitto_runs["clone"])) == []


def test_compare_and_report_work_from_the_users_folder(
    installed: Path, reference_runs: dict[str, Any], mosquitto_runs: dict[str, Any], empty_folder: Path
) -> None:
    _run([str(installed / "harness"), "compare", str(reference_runs["installed"]), str(mosquitto_runs["installed"]),
          "-o", "comparison"], cwd=empty_folder)
    table = (empty_folder / "comparison" / "comparison.md").read_text(encoding="utf-8")
    assert (empty_folder / "comparison" / "comparison.html").is_file()
    assert "## MQTT conformance: 127.0.0.1:" in table and " vs my-mosquitto" in table
    allure = os.environ.get("ALLURE_BIN") or shutil.which("allure")
    if not allure:
        pytest.skip("Allure 3 is not installed here (npm ci --prefix tools; .ci/run does it)")
    done = _run([str(installed / "harness"), "report", str(reference_runs["installed"]), "-o", "allure-report",
                 "--no-single-file"], cwd=empty_folder, env={**_clean_env(), "ALLURE_BIN": allure})
    assert (empty_folder / "allure-report" / "index.html").is_file(), done.stdout + done.stderr
