"""How long a whole conformance run takes, against how long its longest scenario takes. A measurement, not a test.

    python benchmarks/full_run.py [--targets reference,mosquitto] [--repeat 1] [--out FILE]

For each target (launched by the harness, as `--target NAME` does) it runs the built-in suite end to end
in a fresh process and reports the wall time, the longest single scenario (its own duration, from the
JUnit XML) and the start-up: the wall time of a run of one quick scenario (interpreter, plugins,
collection, broker launch, preflight, shutdown). Each at the default concurrency and at
`--concurrency 1` (one scenario after another, as before it existed), at `-n 0` and `-n 2`; and with
`--transport all --clients raw,paho` at the default concurrency. It also times collection of the
suite on a cold and a warm cache of parsed scenario files. The targets of issue 21: the reference broker
in at most 6 s at -n 0; a launched broker in at most twice its longest scenario plus start-up.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

QUICK = "scenarios/mqtt311/connect.yaml::valid-connect-accepted"


def pytest_run(folder: Path, *options: str, env: dict[str, str] | None = None) -> tuple[float, str, Path]:
    junit = folder / f"junit-{time.monotonic_ns()}.xml"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
                          f"--junitxml={junit}", *options], cwd=folder, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=False)
    return time.monotonic() - started, (run.stdout.strip().splitlines() or ["(no output)"])[-1], junit


def longest(junit: Path) -> float:
    if not junit.is_file():
        return 0.0
    return max((float(case.get("time", 0)) for case in ET.parse(junit).iter("testcase")), default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="reference,mosquitto")
    parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = parser.parse_args(argv)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="full-run-") as tmp:
        folder = Path(tmp)
        cache = folder / "cache"
        lines += ["| collection of the suite | wall, end to end | collection (pytest's own figure) | per scenario |",
                  "| --- | ---: | ---: | ---: |"]
        for label in ("cold cache", "warm cache"):
            wall, summary, _ = pytest_run(folder, "--collect-only", env={"MQTT_HARNESS_CACHE_DIR": str(cache)})
            match = re.search(r"(\d+) tests? collected in ([\d.]+)s", summary)
            count, seconds = (int(match.group(1)), float(match.group(2))) if match else (0, 0.0)
            lines.append(f"| {label} | {wall:.2f} s | {seconds:.2f} s | {1000 * seconds / max(count, 1):.2f} ms |")
            print(lines[-1], file=sys.stderr)
        lines += ["", "| target | variants | -n | concurrency | wall | longest scenario | start-up | wall / (2 x longest + start-up) | outcome |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for target in args.targets.split(","):
            startup, _, _ = pytest_run(folder, "--target", target, "-n", "0", QUICK)
            for variants in ((), ("--transport", "all", "--clients", "raw,paho")):
                for workers in ("0", "2"):
                    # One at a time with every transport and client kind would take many minutes: only by default.
                    for concurrency in ("default", "1") if not variants else ("default",):
                        options = ["--target", target, "-n", workers, *variants]
                        if concurrency != "default":
                            options += ["--concurrency", concurrency]
                        wall, summary, junit = pytest_run(folder, *options)
                        slowest = longest(junit)
                        ratio = wall / (2 * slowest + startup) if slowest else 0.0
                        shown = "all x raw,paho" if variants else "default"
                        lines.append(f"| {target} | {shown} | {workers} | {concurrency} | {wall:.1f} s | {slowest:.1f} s | "
                                     f"{startup:.1f} s | {ratio:.2f} | {summary} |")
                        print(lines[-1], file=sys.stderr)
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
