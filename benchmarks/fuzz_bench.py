"""Feed the reference broker many fuzz cases and watch its memory: RSS must stay bounded (no growth
trend) and the broker must still serve afterwards. Figures go to docs/fuzzing.md.

    python3 benchmarks/fuzz_bench.py [CASES]      # default 1,000,000, spread over the three versions

Prints a line per 10% (cases done, cases/s, the broker's RSS) and the verdict counts at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.fuzz import fuzz
from harness.fuzz.runner import Connection, liveness
from harness.targets.reach import default_account, started
from harness.wire import Version


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def main(total: int) -> int:
    with started("reference") as session:
        endpoint = session.endpoint()
        pid = session._broker.process.pid  # noqa: SLF001 - a benchmark may look at the launched process (RunningBroker.process)
        account = default_account(endpoint)
        chunk = max(1, -(-total // 30))  # ten samples per version (rounded up: at least `total` in all)
        began, done, samples, counts = time.monotonic(), 0, [], {}
        for version in Version:
            connection = Connection(endpoint.address, account, version, 3.0)
            for seed in range(10):
                run = fuzz(connection, seed=seed, cases=chunk)
                for verdict, n in run.verdicts.items():
                    counts[verdict] = counts.get(verdict, 0) + n
                done += len(run.outcomes)
                rss = _rss_kib(pid)
                samples.append(rss)
                print(f"{done:>9} cases  {done / (time.monotonic() - began):6.0f}/s  broker RSS {rss / 1024:6.1f} MiB  "
                      f"(MQTT {version.label}, seed {seed})", flush=True)
                if run.stopped:
                    print(f"stopped: {run.stopped}")
                    return 1
        state, why = liveness(Connection(endpoint.address, account, Version.V5, 3.0))
        print(f"after {done} cases: {'still serves' if state is None else why}; verdicts {counts}")
        third = len(samples) // 3
        print(f"RSS first third {sum(samples[:third]) / third / 1024:.1f} MiB, last third "
              f"{sum(samples[-third:]) / third / 1024:.1f} MiB, max {max(samples) / 1024:.1f} MiB")
        return 0 if state is None else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
