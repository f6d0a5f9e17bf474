"""Profiles: what a kind of broker or platform offers, read from a profile YAML file.

A profile is named (`strict`, `mosquitto`, ...) or given as a path (`./profiles/mine.yaml`). A name
is looked up in the user's profile folders first (`profiles/` in the user's folders, harness.folders),
then among the
built-in ones in harness/profiles/, so a user's file of a built-in name replaces it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.wire import Version

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"
USER_PROFILE_DIR = "profiles"  # in each of the user's folders


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    protocols: frozenset[Version]
    capabilities: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # The reference broker's personality that imitates this profile (harness/broker/personalities/).
    personality: str = "strict"
    # The reference broker's config for this profile (harness/broker/config.py sections, e.g. `limits`),
    # merged over what the launcher writes: how `reference` imitates a broker with fewer capabilities.
    broker: dict[str, Any] = field(default_factory=dict)
    # Scenarios that need this broker to themselves (scenario id -> why), beyond those found from their
    # steps (harness.scenarios.sharing): nothing else runs meanwhile.
    run_alone: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the file it was read from


def is_profile_path(reference: str) -> bool:
    """`profile: strict` names a profile; `profile: ./x.yaml` or `dir/x` is a file."""
    return "/" in reference or "\\" in reference or reference.endswith((".yaml", ".yml"))


def user_profile_dirs(folders: Sequence[Path]) -> list[Path]:
    """The user's profile folders: `profiles/` in each user folder that has one, in order."""
    return [folder / USER_PROFILE_DIR for folder in folders if (folder / USER_PROFILE_DIR).is_dir()]


def known_profiles(user_dirs: Sequence[Path] = ()) -> dict[str, Path]:
    """Every profile name -> its file; a user's file hides a built-in one of the same name."""
    found: dict[str, Path] = {}
    for directory in [PROFILE_DIR, *user_dirs]:
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def profile_file(reference: str, user_dirs: Sequence[Path] = ()) -> Path:
    if is_profile_path(reference):
        path = Path(reference).expanduser()
        if not path.is_file():
            raise HarnessError(f"profile file {path} not found")
        return path
    for directory in [*user_dirs, PROFILE_DIR]:
        path = directory / f"{reference}.yaml"
        if path.is_file():
            return path
    raise HarnessError(f"unknown profile {reference!r} (known: {', '.join(known_profiles(user_dirs))}; "
                       f"or give a path to a profile file)")


def load_profile(reference: str, user_dirs: Sequence[Path] = ()) -> Profile:
    """The profile a name or path refers to; HarnessError naming the file for anything malformed."""
    path = profile_file(reference, user_dirs)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("expected a mapping with name and protocols")
        return Profile(
            name=str(data.get("name") or path.stem),
            description=data.get("description", ""),
            protocols=frozenset(Version.parse(str(v)) for v in data["protocols"]),
            capabilities=dict(data.get("capabilities") or {}),
            settings=dict(data.get("settings") or {}),
            personality=str(data.get("personality", "strict")),
            broker=dict(data.get("broker") or {}),
            run_alone=_run_alone(data.get("run_alone")),
            path=path,
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise HarnessError(f"{path}: bad profile: {detail}") from None


def _run_alone(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        raise TypeError("run_alone: expected a mapping of scenario id to the reason it needs the broker to itself")
    return dict(value)
