"""Do verdicts move between runs? A reliability measurement, not a test (it takes long).

    python benchmarks/verdict_stability.py [--runs 20] [--select "-m timer"] [--keepalive-grace 6] [--out FILE]

Starts an anonymous mosquitto (harness.launch, `allow_anonymous true`, no accounts), then runs the
built-in suite against it through its bare URL `--runs` times, half at `-n 0` and half at `-n 2`,
each into its own results.json, and reports every scenario whose verdict was not the same in every
run, with how often each verdict came. The aim is none. `--select` passes pytest selection options
(e.g. `-m timer`, the scenarios that wait on protocol timers, which is where verdicts used to move).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(url: str, workers: str, results: Path, select: list[str]) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "--suite", "builtin",
                    "--broker", url, "-n", workers, f"--report-dir={results}", *select],
                   cwd=results.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--select", default="", help="pytest selection options, e.g. '-m timer'")
    parser.add_argument("--keepalive-grace", type=float, help="the URL's ?keepalive_grace= (default: none, the strict 1 s)")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    from harness.launch import launch

    select = shlex.split(args.select)
    verdicts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_mode: dict[str, dict[str, collections.Counter[str]]] = {"0": collections.defaultdict(collections.Counter),
                                                              "2": collections.defaultdict(collections.Counter)}
    walls: dict[str, list[float]] = {"0": [], "2": []}
    with tempfile.TemporaryDirectory(prefix="verdict-stability-") as tmp:
        broker = launch("mosquitto", Path(tmp) / "broker", anonymous=True)
        try:
            url = broker.url + (f"?keepalive_grace={args.keepalive_grace:g}" if args.keepalive_grace is not None else "")
            for number in range(args.runs):
                workers = "0" if number % 2 == 0 else "2"
                results = Path(tmp) / f"run{number}"
                walls[workers].append(run_once(url, workers, results, select))
                document = json.loads((results / "results.json").read_text())
                for nodeid, result in document["results"].items():
                    verdicts[nodeid][result["verdict"]] += 1
                    by_mode[workers][nodeid][result["verdict"]] += 1
                print(f"run {number + 1}/{args.runs} (-n {workers}): {walls[workers][-1]:.0f} s", file=sys.stderr)
        finally:
            broker.stop()
    moved = {nodeid: counts for nodeid, counts in sorted(verdicts.items()) if len(counts) > 1}
    lines = [
        f"Verdict stability, {datetime.date.today().isoformat()}: {args.runs} runs of the built-in suite"
        f"{' (' + args.select + ')' if args.select else ''} against an anonymous mosquitto by URL"
        f"{f' with keepalive_grace {args.keepalive_grace:g}' if args.keepalive_grace is not None else ''}, half at -n 0 "
        f"(mean {sum(walls['0']) / max(len(walls['0']), 1):.0f} s) and half at -n 2 "
        f"(mean {sum(walls['2']) / max(len(walls['2']), 1):.0f} s).",
        "",
        f"{len(verdicts)} scenarios; {len(moved)} with a verdict that moved.",
    ]
    if moved:
        lines += ["", "| scenario | -n 0 | -n 2 |", "| --- | --- | --- |"]
        for nodeid in moved:
            cells = [", ".join(f"{verdict} {count}" for verdict, count in sorted(by_mode[mode][nodeid].items()))
                     for mode in ("0", "2")]
            lines.append(f"| `{nodeid}` | {cells[0]} | {cells[1]} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
