"""`harness fuzz --broker URL | --target NAME`: fuzz a broker with verdicts; findings become scenarios."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.fuzz import FuzzRun, fuzz
from harness.fuzz.findings import group, write_findings
from harness.fuzz.minimize import minimize
from harness.fuzz.results import write_results
from harness.fuzz.runner import Connection, run_case
from harness.targets.reach import reached
from harness.wire import Version

USAGE = """harness fuzz (--broker URL | --target NAME) [--seed S] [--cases N | --time SECONDS]
                   [--protocol 3.1|3.1.1|5.0|all] [--rate CASES_PER_S] [--timeout S] [--out DIR]
                   [--alluredir DIR]

Sends one mutated packet per connection after a valid CONNECT (or instead of it), with the outcome
the strict decoder expects: a malformed packet or protocol error must close the connection, a
well-formed one must keep it working. Checks after every case that the broker still serves, and
deletes at the end the retained messages its cases set. Writes DIR/fuzz.json (every case) and
DIR/findings/*.yaml (one scenario per distinct violation; pytest DIR/findings --target ...
reproduces them); with --alluredir, Allure results too. Exit 1 when something was found."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness fuzz", usage=USAGE)
    parser.add_argument("--broker", help="the broker's URL (mqtt://user:password@host:port, mqtts://, ws://, wss://)")
    parser.add_argument("--target", help="a targets-file entry instead (a launched one is started)")
    parser.add_argument("--targets-file", help="the targets file for --target (default: ./targets.yaml)")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (default: a random one, printed)")
    parser.add_argument("--cases", type=int, help="cases per protocol version (default 1000)")
    parser.add_argument("--time", type=float, help="seconds per protocol version, instead of --cases")
    parser.add_argument("--protocol", default="all", help="3.1, 3.1.1, 5.0 or all (those the broker accepts)")
    parser.add_argument("--rate", type=float, help="at most this many cases a second")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)")
    parser.add_argument("--shrink-time", type=float, default=60.0,
                        help="seconds in all for shrinking the findings (default 60; the rest are kept as found)")
    parser.add_argument("--out", default="fuzz", help="folder for fuzz.json and findings/ (default: fuzz)")
    parser.add_argument("--alluredir", help="also write Allure results here (a test per version and per finding)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if bool(args.broker) == bool(args.target):
        print("harness fuzz: give --broker URL or --target NAME (one of them)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    try:
        versions = list(Version) if args.protocol == "all" else [Version.parse(args.protocol)]
        began = _now_ms()
        with reached(args.broker, args.target, args.targets_file, "--broker") as (address, account, shown):
            print(f"fuzzing {shown}, seed {seed}", flush=True)
            runs = []
            for version in versions:
                connection = Connection(address, account, version, args.timeout)
                refused = _accepts(connection)
                if refused is not None:
                    print(f"  MQTT {version.label}: not fuzzed ({refused})")
                    continue
                runs.append(fuzz(connection, seed, args.cases, args.time, args.rate, topic=f"mqc/fuzz{secrets.token_hex(3)}",
                                 progress=_progress))
                print()
            groups = group([o for run in runs for o in run.violations])
            deadline = time.monotonic() + args.shrink_time
            for members in groups:  # the first of each, as small as it still shows the violation
                connection = Connection(address, account, members[0].case.version, args.timeout)
                members[0] = minimize(members[0], lambda case, c=connection: run_case(c, case), deadline=deadline)  # type: ignore[misc]
        out = Path(args.out)
        found = write_findings(out / "findings", groups, seed)
        _write_record(out / "fuzz.json", runs, seed, shown)
        if args.alluredir:
            write_results(Path(args.alluredir), runs, groups, found, seed, shown, began, _now_ms())
    except (HarnessError, ValueError) as exc:
        print(f"harness fuzz: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"harness fuzz: cannot write {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    _summary(runs, found, out, seed)
    return 1 if found or any(run.stopped for run in runs) else 0


def _now_ms() -> int:
    return round(time.time() * 1000)


def _accepts(connection: Connection) -> str | None:
    client = connection.open()
    if isinstance(client, str):
        raise HarnessError(f"cannot reach {connection.address.url}: {client}")
    try:
        problem = connection.connect(client)
        return None if problem is None else f"a valid CONNECT got {problem}"
    finally:
        client.close()


def _progress(run: FuzzRun, number: int) -> None:
    if number % 50 == 0 or run.stopped:
        counts = run.verdicts
        print(f"\r  MQTT {run.version.label}: {number} cases, {counts['as specified']} as specified, "
              f"{counts['violation']} violations", end="", flush=True)


def _summary(runs: list[FuzzRun], found: list[Path], out: Path, seed: int) -> None:
    print("| protocol | cases | as specified | violation | setup failed | dead / hung | cases/s |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for run in runs:
        counts = run.verdicts
        rate = len(run.outcomes) / run.seconds if run.seconds else 0.0
        print(f"| {run.version.label} | {len(run.outcomes)} | {counts['as specified']} | {counts['violation']} | "
              f"{counts['setup failed']} | {run.stopped or 'no'} | {rate:.0f} |")
    for run in runs:
        if run.not_cleared:
            print(f"MQTT {run.version.label}: the {len(run.retained)} retained messages its cases set are still there "
                  f"({run.not_cleared})")
    print(f"record: {out / 'fuzz.json'}; " + (f"{len(found)} distinct findings, each a scenario: {out / 'findings'} "
                                               f"(reproduce: pytest {out / 'findings'} --target ...; rerun: --seed {seed})"
                                               if found else "no findings"))


def _write_record(path: Path, runs: list[FuzzRun], seed: int, shown: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"broker": shown, "seed": seed, "runs": [{
        "protocol": run.version.label, "seconds": round(run.seconds, 3), "stopped": run.stopped,
        "verdicts": dict(run.verdicts), "retained_topics": list(run.retained), "retained_not_cleared": run.not_cleared,
        "cases": [{"number": o.case.number, "base": o.case.base, "mutation": o.case.mutation, "hex": o.case.data.hex(),
                   "before_connect": o.case.before_connect, "split": o.case.split, "expect": o.case.expect,
                   "rules": list(o.case.rules), "why": o.case.why, "verdict": o.verdict, "observed": o.observed}
                  for o in run.outcomes]} for run in runs]}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

