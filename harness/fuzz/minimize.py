"""Shrink a violating case: the smallest packet that still shows the same violation.

Greedy removal of byte blocks from the packet's body (halves, then quarters, down to single bytes),
the remaining length rewritten to match. A smaller candidate is kept when the strict decoder still
expects the same outcome for the same statements and the broker still violates it the same way.
Each try is one run against the broker, so the tries are capped, per finding and in all (a deadline). A case whose mutation is its
length field, or whose length takes more than one byte, is kept as it is (rewriting the length would
undo the mutation).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable

from harness.fuzz.cases import Case, oracle
from harness.fuzz.runner import Outcome

MAX_TRIES = 24


def _without(data: bytes, start: int, length: int) -> bytes | None:
    body = data[2:]
    if start + length > len(body):
        return None
    shorter = body[:start] + body[start + length:]
    return bytes([data[0], len(shorter)]) + shorter


def _same_kind(observed: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "N", observed)


def minimize(outcome: Outcome, run: Callable[[Case], Outcome], tries: int = MAX_TRIES,
             deadline: float | None = None) -> Outcome:
    """The smallest case found within `tries` runs (and before time.monotonic() passes `deadline`)."""
    case = outcome.case
    if case.split is not None or "remaining length" in case.mutation or len(case.data) < 3 or case.data[1] & 0x80 \
            or case.data[1] != len(case.data) - 2:
        return outcome
    best, used = outcome, 0
    block = max(1, (len(case.data) - 2) // 2)
    def more() -> bool:
        return used < tries and (deadline is None or time.monotonic() < deadline)

    while block >= 1 and more():
        shrunk = False
        start = 0
        while more():
            candidate = _without(best.case.data, start, block)
            if candidate is None:
                break
            expected = oracle(case.version, candidate, case.before_connect)
            if expected is None or expected[:2] != (case.expect, case.rules):
                start += block
                continue
            used += 1
            trial = run(dataclasses.replace(best.case, data=candidate, why=expected[2]))
            if trial.verdict == outcome.verdict and _same_kind(trial.observed) == _same_kind(outcome.observed):
                best, shrunk = trial, True  # keep it; try the same place again
            else:
                start += block
        if not shrunk:
            block //= 2
    if best is not outcome:
        best = dataclasses.replace(best, case=dataclasses.replace(
            best.case, mutation=f"{case.mutation}, shrunk from {len(case.data)} to {len(best.case.data)} bytes"))
    return best
