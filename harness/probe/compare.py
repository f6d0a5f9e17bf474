"""A drafted profile against a committed target, field by field, as the run would use it.

The committed side is the target's effective view: its profile's capabilities with the targets
entry's over them, and (for a 5.0 broker) what its CONNACK denies, exactly as TargetSession decides
which scenarios apply. A capability the committed profile leaves out counts as absent, except the
ones a 5.0 CONNACK announces (wildcard, shared and identified subscriptions, topic aliases), which a
profile leaves to the announcement. keepalive_grace agrees when the measured one fits within the
committed one (the committed grace is what the suite waits; the probe measures one close).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.probe.checks import Draft
from harness.scenarios.model import ANNOUNCED_FEATURES


@dataclass(frozen=True)
class Difference:
    field: str
    committed: Any
    drafted: Any
    evidence: str

    def __str__(self) -> str:
        return f"{self.field}: committed {self.committed!r}, probe found {self.drafted!r} ({self.evidence})"


def committed_capability(key: str, capabilities: dict[str, bool], denied: dict[str, bool]) -> bool:
    if key in denied:
        return denied[key]
    if key in capabilities:
        return bool(capabilities[key])
    return key in ANNOUNCED_FEATURES  # left to the CONNACK: offered unless denied


def differences(draft: Draft, protocols: frozenset[Any], capabilities: dict[str, bool], denied: dict[str, bool],
                settings: dict[str, Any]) -> list[Difference]:
    found: list[Difference] = []
    drafted_protocols = sorted(v.label for v in draft.accepted())
    committed_protocols = sorted(v.label for v in protocols)
    if drafted_protocols != committed_protocols:
        evidence = "; ".join(f.evidence for f in draft.protocols.values())
        found.append(Difference("protocols", committed_protocols, drafted_protocols, evidence))
    for key, finding in draft.capabilities.items():
        committed = committed_capability(key, capabilities, denied)
        if committed != finding.value:
            found.append(Difference(f"capabilities.{key}", committed, finding.value, finding.evidence))
    grace = draft.settings.get("keepalive_grace")
    committed_grace = float(settings.get("keepalive_grace", 1.0))
    if grace is not None and grace.value > committed_grace:
        found.append(Difference("settings.keepalive_grace", committed_grace, grace.value, grace.evidence))
    return found


def against_target(draft: Draft, session: Any) -> list[Difference]:
    """`draft` against a TargetSession (harness.targets) of the same broker."""
    from harness.targets import LAUNCHED_CAPABILITIES

    capabilities = {k: v for k, v in session.capabilities.items() if k not in LAUNCHED_CAPABILITIES}
    return differences(draft, session.profile.protocols, capabilities, session.announced_capabilities(), session.settings)
