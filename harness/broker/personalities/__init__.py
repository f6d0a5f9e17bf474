"""The registry of the reference broker's personalities: the strict one (the specification) and one
per platform, each in its own module here. A new platform: a module with a `Personality` subclass,
and its line below."""

from __future__ import annotations

from harness.broker.personalities.cloudplugs import CloudPlugsPersonality
from harness.broker.personalities.cumulocity import CumulocityLegacyPersonality, CumulocityPersonality
from harness.broker.personalities.itron import ItronPersonality
from harness.broker.personalities.watson import WatsonPersonality
from harness.broker.personality import Personality

PERSONALITIES: dict[str, type[Personality]] = {kind.name: kind for kind in (
    Personality,
    CloudPlugsPersonality,
    CumulocityPersonality,
    CumulocityLegacyPersonality,
    ItronPersonality,
    WatsonPersonality,
)}
