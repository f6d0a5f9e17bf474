"""`harness report`: turn a run's Allure results into the Allure 3 HTML report.

    harness report                     # reports/allure-results -> reports/allure-report/ and
                                       #   reports/allure-report-single/index.html (one file to mail or attach)
    harness report reports/mosquitto   # any directory holding allure-results/ (or several, see --help)

Allure 3 is Node's npm package `allure`, found at $ALLURE_BIN, else as `allure` on PATH (if that is
Allure 3, not the Java Allure 2 command), else run through `npx --yes allure@3.18.0` (which fetches
it from the npm registry once). Install it with `npm install -g allure@3`, or point ALLURE_BIN at
an allure command. It runs offline, but its page embeds a Google Tag Manager script that would
call out when the report is opened: that tag is removed from every generated HTML file. When several result directories are given (runs against several targets,
or a parent directory holding one run per target), they make one report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.report.categories import ALLURE_CATEGORIES

# What npx runs when no allure is installed (tools/package.json in a clone pins the same; a test checks).
ALLURE_VERSION = "3.18.0"
INSTALL_HINT = "npm install -g allure@3 (needs Node.js and npm), or set ALLURE_BIN to an Allure 3 allure"
REPORT_NAME = "MQTT conformance"
# The analytics block of Allure 3's awesome template: the gtag loader and its inline config.
_ANALYTICS = re.compile(
    r"\s*<script async src=\"https://www\.googletagmanager\.com/gtag/js[^\"]*\"></script>"
    r"(\s*<script>\s*window\.dataLayer[\s\S]*?</script>)?")


class ReportError(Exception):
    """A one-line reason the report could not be made."""


def allure_major(command: Sequence[str], timeout: float = 60) -> int | None:
    """The major version `command --version` prints (Allure 3: "3.18.0", Allure 2: "2.32.0"); None if it does not run."""
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\b(\d+)\.\d+", done.stdout) if done.returncode == 0 else None
    return int(found.group(1)) if found else None


def find_allure() -> list[str]:
    """The command that runs Allure 3: $ALLURE_BIN, else `allure` on PATH, else through npx; ReportError otherwise.

    An ALLURE_BIN that is set but is no Allure 3 is an error, not a reason to look elsewhere.
    """
    configured = os.environ.get("ALLURE_BIN")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)) and not shutil.which(configured):
            raise ReportError(f"ALLURE_BIN={configured} is not an executable file: {INSTALL_HINT}")
        major = allure_major([configured])
        if major != 3:
            what = "did not answer `--version`" if major is None else f"is Allure {major}, not Allure 3"
            raise ReportError(f"ALLURE_BIN={configured} {what}: {INSTALL_HINT}")
        return [configured]
    on_path = shutil.which("allure")
    looked = ["ALLURE_BIN unset", "no allure on PATH"]
    if on_path:
        major = allure_major([on_path])
        if major == 3:
            return [on_path]
        what = "does not answer `--version`" if major is None else f"is Allure {major} (the Java command), not Allure 3"
        looked[1] = f"allure on PATH ({on_path}) {what}"
    npx = shutil.which("npx")
    if npx:
        # The first call downloads the package into npm's cache: give it time.
        command = [npx, "--yes", f"allure@{ALLURE_VERSION}"]
        if allure_major(command, timeout=300) == 3:
            if on_path:
                print(f"harness report: {looked[1]}; using npx allure@{ALLURE_VERSION}", file=sys.stderr)
            return command
        looked.append(f"`npx --yes allure@{ALLURE_VERSION}` failed (is the npm registry reachable?)")
    else:
        looked.append(f"no npx to fetch allure@{ALLURE_VERSION}")
    raise ReportError(f"Allure 3 not found ({', '.join(looked)}): {INSTALL_HINT}")


def results_dirs(paths: list[Path]) -> list[Path]:
    """allure-results directories: given directly, inside a run directory, or one per run below a parent."""
    found: list[Path] = []
    for path in paths:
        if list(path.glob("*-result.json")):
            found.append(path)
        elif (path / "allure-results").is_dir():
            found.append(path / "allure-results")
        else:
            found += sorted(p for p in path.glob("*/allure-results") if p.is_dir())
    if not found:
        raise ReportError(f"no Allure results in {', '.join(map(str, paths))} (run pytest with --report-dir first)")
    return found


def merged_results(results: list[Path], into: Path) -> Path:
    """Several runs as one results directory (hard links), with one environment.properties naming every target.

    Each run wrote its own environment.properties with the same keys (target=..., target.version=...);
    given side by side, Allure would keep one of them. Here each run's keys are prefixed with its target.
    """
    into.mkdir(parents=True)
    environment: list[str] = []
    targets: list[str] = []
    for index, directory in enumerate(results):
        properties = _properties(directory / "environment.properties")
        target = properties.pop("target", None) or f"run{index + 1}"
        targets.append(target)
        for key, value in properties.items():
            if key.startswith("target."):
                environment.append(f"target.{target}.{key[len('target.'):]}={value}")
            elif not any(line.startswith(key + "=") for line in environment):
                environment.append(f"{key}={value}")
        for path in directory.iterdir():
            if path.name not in ("environment.properties", "categories.json") and not (into / path.name).exists():
                _link(path, into / path.name)
    (into / "environment.properties").write_text("\n".join([f"targets={', '.join(targets)}", *environment]) + "\n", encoding="utf-8")
    return into


def _link(source: Path, target: Path) -> None:
    # Allure skips symbolic links; a hard link costs nothing, a copy is the fallback across file systems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _properties(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def strip_analytics(directory: Path) -> int:
    """Remove the analytics tag from every HTML file; returns how many files had it."""
    changed = 0
    for page in directory.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        cleaned = _ANALYTICS.sub("", text)
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")
            changed += 1
    return changed


def generate(results: list[Path], output: Path, single_file: bool, allure: Sequence[str] | str | None = None,
             name: str = REPORT_NAME) -> Path:
    """Run `allure generate` with a config written for this call; returns the report's index.html.

    `allure` is the command (find_allure's answer, or one executable's path), found when not given.
    """
    allure = [allure] if isinstance(allure, str) else list(allure or find_allure())
    if output.exists():
        shutil.rmtree(output)
    options = {"singleFile": single_file, "reportName": name, "groupBy": ["parentSuite", "suite", "subSuite"]}
    # Allure 3's page reads categories from its config, not from categories.json (only its Allure 2 plugins do).
    categories = [{k: v for k, v in c.items() if k != "description"} for c in ALLURE_CATEGORIES]
    config = {"name": name, "output": str(output.resolve()), "categories": categories,
              "plugins": {"awesome": {"options": options}}}
    output.parent.mkdir(parents=True, exist_ok=True)
    # Beside the results, so merging them can use hard links on the same file system.
    with tempfile.TemporaryDirectory(prefix=".allure-", dir=results[0].resolve().parent) as tmp:
        config_path = Path(tmp) / "allurerc.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        inputs = [merged_results(results, Path(tmp) / "results")] if len(results) > 1 else [r.resolve() for r in results]
        command = [*allure, "generate", "--config", str(config_path), *map(str, inputs)]
        completed = subprocess.run(command, cwd=tmp, capture_output=True, text=True,
                                   env={**os.environ, "NO_COLOR": "1", "ALLURE_NO_ANALYTICS": "true"})
    index = output / "index.html"
    if completed.returncode != 0 or not index.is_file():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise ReportError(f"allure generate failed ({completed.returncode}): {' / '.join(tail)}")
    if not strip_analytics(output):
        print(f"harness report: no analytics tag found in {output} (has Allure's template changed?)", file=sys.stderr)
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path, default=[Path("reports")],
                        help="run directories or allure-results directories (default: reports)")
    parser.add_argument("-o", "--output", type=Path, help="report directory (default: <first result dir>/allure-report)")
    parser.add_argument("--no-single-file", action="store_true", help="skip the single-file variant")
    args = parser.parse_args(argv)
    try:
        results = results_dirs(args.results)
        base = args.output or (args.results[0] / "allure-report")
        allure = find_allure()
        made = [generate(results, base, single_file=False, allure=allure)]
        if not args.no_single_file:
            made.append(generate(results, base.with_name(base.name + "-single"), single_file=True, allure=allure))
    except ReportError as exc:
        print(f"harness report: {exc}", file=sys.stderr)
        return 1
    for index in made:
        print(index)
    return 0
