"""Vendor behaviour ids (shared VENDORS.md): what a platform documents, cited in scenario `refs`.

A ref whose prefix (text before the first `-`) is a platform prefix below is a vendor ref and must
exist in vendors.tsv, so a typo cannot silently leave a behaviour uncovered.
"""

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_FILE = Path(__file__).resolve().parent / "vendors.tsv"


@dataclass(frozen=True)
class VendorBehaviour:
    id: str
    platform: str  # the profile name
    paraphrase: str


@cache
def behaviours() -> dict[str, VendorBehaviour]:
    with open(_FILE, encoding="utf-8", newline="") as handle:
        return {row["id"]: VendorBehaviour(row["id"], row["platform"], row["paraphrase"])
                for row in csv.DictReader(handle, delimiter="\t")}


@cache
def prefixes() -> frozenset[str]:
    return frozenset(ref.split("-", 1)[0] for ref in behaviours())


def is_vendor_ref(ref: str) -> bool:
    return "-" in ref and ref.split("-", 1)[0] in prefixes()


def lookup(ref: str) -> VendorBehaviour | None:
    return behaviours().get(ref)
