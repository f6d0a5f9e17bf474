"""Profiles: what a kind of broker or platform offers, read from harness/profiles/<name>.yaml."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.wire import Version

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    protocols: frozenset[Version]
    capabilities: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # The reference broker's personality that imitates this profile (harness/broker/personalities.py).
    personality: str = "strict"
    # The reference broker's config for this profile (harness/broker/config.py sections, e.g. `limits`),
    # merged over what the launcher writes: how `reference` imitates a broker with fewer capabilities.
    broker: dict[str, Any] = field(default_factory=dict)


def known_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name: str) -> Profile:
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise HarnessError(f"unknown profile {name!r} (known: {', '.join(known_profiles())})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Profile(
            name=data["name"],
            description=data.get("description", ""),
            protocols=frozenset(Version.parse(str(v)) for v in data["protocols"]),
            capabilities=dict(data.get("capabilities", {})),
            settings=dict(data.get("settings", {})),
            personality=str(data.get("personality", "strict")),
            broker=dict(data.get("broker") or {}),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise HarnessError(f"{path}: bad profile: {exc}") from None
