"""Baselines: per target, the scenarios it is known to fail, each with the reason.

A baseline is the release gate's memory. `baselines/<target>.yaml` in the user's folders
(harness.folders), else the built-in one of that name (harness/suite/baselines/), or
`--baseline PATH`, holds

    target: mosquitto
    expected_failures:
      scenarios/mqtt31/connect.yaml::clientid-24-characters-refused: >-
        why the broker fails it

and is the same mechanism as a target's inline `deviations:` in targets.yaml: both become the
target's deviations, i.e. strict expected failures. So a run fails on any failure not listed, on
a listed scenario that passes (the baseline must shrink), and — checked here — on an entry that
names no existing scenario, however the run was filtered.

A broker that breaks a rule only some of the time (a race inside it, seen in some runs and not in
others) is listed under `intermittent_failures:` instead, with the same node id -> reason form.
Such a scenario may pass or fail with a ScenarioFailed; any other error still fails the run. The
strict list stays the default: an intermittent entry is a weaker claim, and the reason should say
how often it was seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.errors import HarnessError, ScenarioFileError, load_data_file
from harness.scenarios.model import load_scenarios

BASELINE_DIR = "baselines"
SECTIONS = ("expected_failures", "intermittent_failures")  # strict entries, and races seen in some runs only


@dataclass(frozen=True)
class Stale:
    nodeid: str
    source: str  # the file that lists it
    problem: str


def default_path(folders: Sequence[Path], target: str, builtin_target: bool = False) -> Path | None:
    """The user's baselines/<target>.yaml, else (for a built-in target, which the user's targets
    file does not redefine) the built-in one; None when there is neither."""
    from harness import suite
    from harness.folders import first_file

    user = first_file(list(folders), f"{BASELINE_DIR}/{target}.yaml")
    if user is None and builtin_target and (suite.BASELINES / f"{target}.yaml").is_file():
        return suite.BASELINES / f"{target}.yaml"
    return user


def scenario_file(folders: Sequence[Path], path_text: str) -> Path | None:
    """The file a node id's path names: below a user folder (the rootdir among them), else in the built-in suite."""
    from harness import suite
    from harness.folders import first_file

    path = first_file(list(folders), path_text)
    if path is not None:
        return path
    builtin = suite.builtin_path(path_text)
    return builtin if builtin is not None and builtin.is_file() else None


@dataclass(frozen=True)
class Baseline:
    reasons: dict[str, str]  # node id -> reason, for both kinds of entry
    intermittent: frozenset[str]  # the node ids listed under intermittent_failures


def load_baseline(path: Path, target: str) -> Baseline:
    """The entries of a baseline file; HarnessError naming the file for anything malformed."""
    data = load_data_file(path, f"baseline {path}")
    if not isinstance(data, Mapping) or not set(data) <= {"target", *SECTIONS, "description"}:
        raise HarnessError(f"baseline {path}: expected the keys target, expected_failures, "
                           "intermittent_failures (and description)")
    if data.get("target") not in (None, target):
        raise HarnessError(f"baseline {path} is for target {data['target']!r}, not {target!r}")
    sections = {section: _section(path, data, section) for section in SECTIONS}
    twice = sorted(set(sections["expected_failures"]) & set(sections["intermittent_failures"]))
    if twice:
        raise HarnessError(f"baseline {path}: listed as both expected and intermittent: {', '.join(twice)}")
    return Baseline({**sections["expected_failures"], **sections["intermittent_failures"]},
                    frozenset(sections["intermittent_failures"]))


def _section(path: Path, data: Mapping[str, object], section: str) -> dict[str, str]:
    entries = data.get(section) or {}
    if not isinstance(entries, Mapping):
        raise HarnessError(f"baseline {path}: {section} must map scenario node ids to reasons")
    result: dict[str, str] = {}
    for nodeid, reason in entries.items():
        if not isinstance(reason, str) or not reason.strip():
            raise HarnessError(f"baseline {path}: {section}: {nodeid}: give the reason this target fails it")
        result[str(nodeid)] = " ".join(reason.split())
    return result


def merge(inline: Mapping[str, str], baseline: Mapping[str, str], source: str) -> dict[str, str]:
    """A target's deviations: targets.yaml's inline ones plus its baseline file; an id in both is an error."""
    twice = sorted(set(inline) & set(baseline))
    if twice:
        raise HarnessError(f"{source}: listed in both targets.yaml deviations and the baseline: {', '.join(twice)}")
    return {**inline, **baseline}


@cache
def _scenario_ids(path: Path, mtime_ns: int) -> frozenset[str] | str:
    """The scenario ids of a file, or why it cannot be read (cached per version: several entries name one file)."""
    try:
        return frozenset(s.id for s in load_scenarios(path))
    except ScenarioFileError as exc:
        return exc.problem


def stale_entries(entries: Mapping[str, str], folders: Sequence[Path], source: str) -> list[Stale]:
    """Entries that name no existing scenario: a missing file, a missing id, or not a node id at all."""
    stale = []
    for nodeid in entries:
        path_text, sep, scenario_id = nodeid.partition("::")
        scenario_id = scenario_id.split("[", 1)[0]  # multi-target runs add [target]; the baseline is per target anyway
        if not sep or not scenario_id:
            stale.append(Stale(nodeid, source, "not a scenario node id (expected scenarios/<file>.yaml::<id>)"))
            continue
        path = scenario_file(folders, path_text)
        if path is None:
            stale.append(Stale(nodeid, source, f"no file {path_text}"))
            continue
        ids = _scenario_ids(path.resolve(), path.stat().st_mtime_ns)
        if isinstance(ids, str):
            continue  # the file itself is broken: that is its own collection error, not the baseline's
        if scenario_id not in ids:
            stale.append(Stale(nodeid, source, f"{path_text} has no scenario {scenario_id!r}"))
    return stale
