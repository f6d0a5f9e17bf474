"""`harness fuzz`: cases generated from the codec, each with a verdict, every finding kept as a scenario.

cases.py makes the cases and their expected outcome (the strict decoder is the oracle), runner.py
runs one and checks the broker is alive after it (a fresh CONNECT + PINGREQ after every case), findings.py writes the violations as scenario
files, cli.py is the command. `fuzz` runs cases one at a time (two connections at most), at a rate
that can be capped, until the case count or the time is reached, and stops at a dead broker; then it
deletes the retained messages its cases may have set.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.fuzz.cases import generate
from harness.fuzz.runner import Connection, Outcome, clear_retained, liveness, run_case
from harness.wire import Version


@dataclass
class FuzzRun:
    version: Version
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str | None = None  # why it ended before its cases ran out
    seconds: float = 0.0
    retained: dict[str, None] = field(default_factory=dict)  # topics its cases may have set a retained message on
    not_cleared: str | None = None  # why those could not be deleted afterwards

    @property
    def verdicts(self) -> Counter[str]:
        return Counter(o.verdict for o in self.outcomes)

    @property
    def violations(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict == "violation"]


def fuzz(connection: Connection, seed: int, cases: int | None = None, seconds: float | None = None,
         rate: float | None = None, topic: str = "fuzz",
         progress: Callable[[FuzzRun, int], None] = lambda run, n: None) -> FuzzRun:
    run = FuzzRun(connection.version)
    started = time.monotonic()
    limit = cases if cases is not None else (None if seconds is not None else 1000)
    for case in itertools.islice(generate(seed, connection.version, topic), limit):
        if seconds is not None and time.monotonic() - started >= seconds:
            break
        began = time.monotonic()
        outcome = run_case(connection, case)
        run.retained.update(dict.fromkeys(case.retained))
        if outcome.verdict != "broker dead":  # a fresh connection after every case, even one the broker answered:
            state, why = liveness(connection)  # a broker may serve the old connection and no new one
            if state is not None:
                outcome = Outcome(case, state, f"{outcome.observed}; then {why}")
        run.outcomes.append(outcome)
        progress(run, case.number)
        if outcome.verdict in ("broker dead", "broker hung"):
            run.stopped = f"case {case.number} ({case.title}): {outcome.observed}"
            break
        if rate:
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - began)))
    run.seconds = time.monotonic() - started
    if not run.stopped:
        run.not_cleared = clear_retained(connection, list(run.retained))
    return run


__all__ = ["Connection", "FuzzRun", "Outcome", "fuzz"]
