"""The built-in suite, shipped inside the package: what a run uses when the user's folder has none.

    scenarios/    every scenario file (node ids `scenarios/<file>.yaml::<id>`, wherever installed)
    targets.yaml  the built-in targets (reference and its personalities, the launchable brokers)
    baselines/    the known deviations of the built-in targets, one file per target
    coverage/     what no scenario can check, per protocol version (harness coverage)

The profiles are beside it in harness/profiles/. The user's own files extend or replace these by
name: a targets.yaml, profiles/ and baselines/ in pytest's rootdir (harness.targets.files). In a
clone of the repository `scenarios` is a link to the top-level scenarios/ folder; a built wheel or
sdist holds the files themselves.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
SCENARIOS = ROOT / "scenarios"
TARGETS_FILE = ROOT / "targets.yaml"
BASELINES = ROOT / "baselines"
COVERAGE = ROOT / "coverage"
SCENARIO_DIR_NAME = "scenarios"


def scenario_files() -> list[Path]:
    """The built-in scenario files, in collection order."""
    return sorted(p for p in SCENARIOS.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def builtin_nodeid(path: Path) -> str | None:
    """`scenarios/<file>.yaml` for a file of the built-in suite, however it was reached; else None.

    Installed, the files sit in site-packages, outside any rootdir; this keeps their node ids, and so
    the baselines' and comparisons' keys, the same as in a clone of the repository."""
    try:
        relative = path.resolve().relative_to(SCENARIOS.resolve())
    except ValueError:
        return None
    return f"{SCENARIO_DIR_NAME}/{relative.as_posix()}"


def builtin_path(nodeid_path: str) -> Path | None:
    """The built-in file a `scenarios/<file>.yaml` path names, if it exists."""
    head, _, rest = nodeid_path.replace("\\", "/").partition("/")
    if head != SCENARIO_DIR_NAME or not rest:
        return None
    path = SCENARIOS / rest
    return path if path.exists() else None
