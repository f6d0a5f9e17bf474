"""Why a scenario did not pass, in the four kinds a reader acts on differently.

The same classification is made twice, from the same texts: here in Python for results.json and
the comparison, and as Allure's categories.json (status plus a regex on the message) for the
HTML report. The regexes use `[\\s\\S]*` rather than inline flags so that Allure 2 (Java,
whole-string match) and Allure 3 (JavaScript, search) read them alike.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

VIOLATION = "broker violates the specification"
DEVIATION = "broker deviates as its profile documents"
SETUP = "harness or setup error"
TIMEOUT = "timeout"
STALE = "baselined scenario now passes"
INTERMITTENT = "broker deviates in some runs, as its baseline documents"

# How a known deviation's xfail reason begins (harness/plugin.py writes them; the texts are read back here).
DEVIATION_PREFIX = "known deviation of "
INTERMITTENT_PREFIX = "known intermittent deviation of "

# What the runner says when the broker did not answer in time (harness/scenarios/runner.py).
TIMEOUT_MARKERS = ("received: nothing within", "received: still open after", "no PINGRESP within")
_TIMEOUT = re.compile("|".join(re.escape(m) for m in TIMEOUT_MARKERS))


def categorise(verdict: str, detail: str) -> str | None:
    """The category of a verdict from results.json; None for passed and skipped."""
    if verdict == "xfailed":
        return INTERMITTENT if detail.startswith(INTERMITTENT_PREFIX) else DEVIATION
    if detail.startswith("[XPASS(strict)]"):
        return STALE
    if verdict == "xpassed":
        return None  # only intermittent entries are not strict: passing this time is allowed
    if verdict == "error" or (verdict == "failed" and detail.lstrip().startswith("setup error")):
        return SETUP
    if verdict == "failed":
        return TIMEOUT if _TIMEOUT.search(detail) else VIOLATION
    return None


def _anywhere(pattern: str) -> str:
    return rf"^[\s\S]*({pattern})[\s\S]*$"


ALLURE_CATEGORIES = [
    # First match wins: the more specific kinds come first.
    {"name": STALE, "matchedStatuses": ["failed"], "messageRegex": _anywhere("XPASS"),
     "description": "listed in the target's baseline but passed: remove it from the baseline"},
    {"name": TIMEOUT, "matchedStatuses": ["failed"],
     "messageRegex": _anywhere("|".join(re.escape(m) for m in TIMEOUT_MARKERS))},
    {"name": INTERMITTENT, "matchedStatuses": ["skipped"], "messageRegex": _anywhere(re.escape(INTERMITTENT_PREFIX)),
     "description": "a failure the target's baseline lists as intermittent: the broker shows it in some runs only"},
    {"name": DEVIATION, "matchedStatuses": ["skipped"], "messageRegex": _anywhere("XFAIL"),
     "description": "a failure the target's baseline lists with its reason"},
    {"name": SETUP, "matchedStatuses": ["broken"]},
    {"name": SETUP, "matchedStatuses": ["failed"], "messageRegex": _anywhere("setup error|SetupFailed|HarnessError")},
    {"name": VIOLATION, "matchedStatuses": ["failed"], "messageRegex": _anywhere("ScenarioFailed")},
]


def write_categories(results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "categories.json"
    path.write_text(json.dumps(ALLURE_CATEGORIES, indent=1), encoding="utf-8")
    return path
