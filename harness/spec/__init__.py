"""The normative statements scenarios cite: MQTT 3.1.1 and 5.0 (OASIS numbering) and our 3.1 rule ids.

Ids are keyed by protocol version: the same id means different things in 3.1.1 and 5.0.
"""

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.wire import Version

_DIR = Path(__file__).resolve().parent
_FILES = {
    Version.V31: "mqtt-3.1-rules.tsv",
    Version.V311: "mqtt-3.1.1-statements.tsv",
    Version.V5: "mqtt-5.0-statements.tsv",
}


@dataclass(frozen=True)
class Statement:
    id: str
    version: Version
    section: str
    actor: str  # server, client or both
    testable: str  # yes, partial, no
    paraphrase: str

    @property
    def binds_broker(self) -> bool:
        return self.actor in ("server", "both") and self.testable in ("yes", "partial")


@cache
def statements(version: Version) -> dict[str, Statement]:
    with open(_DIR / _FILES[version], encoding="utf-8", newline="") as handle:
        return {
            row["id"]: Statement(row["id"], version, row["section"], row["actor"], row["testable_from_client_side"], row["paraphrase"])
            for row in csv.DictReader(handle, delimiter="\t")
        }


def lookup(version: Version, ref: str) -> Statement | None:
    """The statement a scenario of `version` means by `ref`. 3.1 scenarios may cite 3.1.1 ids too,
    for rules 3.1 shares with 3.1.1 (see shared/spec/NOTES.md)."""
    found = statements(version).get(ref)
    if found is None and version is Version.V31:
        found = statements(Version.V311).get(ref)
    return found


def is_protocol_ref(ref: str) -> bool:
    return ref.startswith(("MQTT-", "MQTT31-"))
