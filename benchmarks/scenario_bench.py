"""How fast the harness runs scenarios, and where the time goes. A benchmark, not a test.

    python benchmarks/scenario_bench.py [--target mosquitto] [--copies 10] [--rounds 20]

Scenarios that need a timer, another transport or a platform, and those the target's baseline
says it fails (each waits out its expect timeout), are left out: they measure the broker.

Part 1 runs every scenario without a protocol timer through the scenario runner in-process,
`--rounds` times, against one harness-launched broker, and splits the wall time into time blocked
in the socket waiting for the broker (network wait) and everything else (harness CPU).

Part 2 runs pytest end to end with `-n 0` and `-n 2` on a scenario tree made of `--copies` copies
of scenarios/ (so start-up is amortised), and reports scenarios per second with and without the
fixed cost of starting pytest, collecting and launching the broker (measured by a run that
selects no scenario).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.clients import transport as transport_module  # noqa: E402
from harness.launch import launch  # noqa: E402
from harness.scenarios.model import Scenario, load_scenarios  # noqa: E402
from harness.scenarios.runner import Endpoint, ScenarioFailed, ScenarioRunner  # noqa: E402

# What a harness-launched strict broker offers (profile capabilities and the standard accounts).
STRICT_CAPABILITIES = {"auth", "restricted_account", "anonymous_refused", "will", "retain", "qos1", "qos2",
                       "persistent_session", "zero_length_client_id"}


class _BlockedTimer:
    """Wraps TcpTransport.recv to add up the time spent waiting for the broker's bytes."""

    def __init__(self) -> None:
        self.blocked = 0.0
        self._original = transport_module.TcpTransport.recv

    def __enter__(self) -> "_BlockedTimer":
        timer = self

        def timed_recv(self: transport_module.TcpTransport, timeout: float) -> bytes:
            started = time.perf_counter()
            try:
                return timer._original(self, timeout)
            finally:
                timer.blocked += time.perf_counter() - started

        transport_module.TcpTransport.recv = timed_recv  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        transport_module.TcpTransport.recv = self._original  # type: ignore[method-assign]


def _baselined(kind: str) -> set[str]:
    """Scenario ids the target is known to fail: each waits out its timeout, which is not harness speed."""
    path = ROOT / "baselines" / f"{kind}.yaml"
    entries = (yaml.safe_load(path.read_text()) or {}).get("expected_failures", {}) if path.is_file() else {}
    return {str(node).split("::")[1].split("[")[0] for node in entries}


def _applies(scenario: Scenario, skip_ids: set[str]) -> bool:
    """Scenarios a strict broker on plain TCP runs without a timer: what measures the harness itself."""
    plain_tcp = not scenario.transports or "tcp" in scenario.transports
    platform_only = any(need not in STRICT_CAPABILITIES for need in scenario.requires)
    return not scenario.uses_timer and plain_tcp and not platform_only and scenario.id not in skip_ids


def in_process(kind: str, rounds: int) -> dict[str, float]:
    skip = _baselined(kind)
    scenarios = [s for path in sorted((ROOT / "scenarios").rglob("*.yaml")) for s in load_scenarios(path) if _applies(s, skip)]
    with tempfile.TemporaryDirectory() as workdir:
        broker = launch(kind, Path(workdir))
        try:
            endpoint = Endpoint(host=broker.host, port=broker.port, accounts=broker.accounts, settings={"keepalive_grace": 5})
            count, failures = 0, 0
            with _BlockedTimer() as timer:
                wall0, cpu0 = time.perf_counter(), time.process_time()
                for round_number in range(rounds):
                    for index, scenario in enumerate(scenarios):
                        cid = f"b{round_number:03d}x{index:04d}"
                        try:
                            ScenarioRunner(scenario, endpoint, cid).run()
                        except ScenarioFailed:
                            failures += 1
                        count += 1
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            broker.stop()
    return {"scenarios": count, "failures": failures, "wall": wall, "cpu": cpu, "blocked": timer.blocked}


def pytest_run(tree: Path, workers: int, target: str, select: str, skip_ids: set[str]) -> float:
    command = [sys.executable, "-m", "pytest", str(tree), "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
               "--target", target, "-m", select, "-n", str(workers), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")]
    if skip_ids:
        command += ["-k", " and ".join(f"not {scenario_id}" for scenario_id in sorted(skip_ids))]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    # 1: the copies are not under the recorded deviations' node ids, so those scenarios fail here.
    if completed.returncode not in (0, 1, 5):
        print(completed.stdout[-2000:], completed.stderr[-2000:])
        raise SystemExit(f"pytest exited {completed.returncode}")
    return elapsed


def end_to_end(kind: str, copies: int) -> list[tuple[int, int, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "scenarios"
        for copy in range(copies):
            shutil.copytree(ROOT / "scenarios", tree / f"copy{copy}")
        skip = _baselined(kind)
        count = sum(1 for path in tree.rglob("*.yaml") for s in load_scenarios(path) if _applies(s, skip))
        for workers in (0, 2):
            fixed = pytest_run(tree, workers, kind, "nothing_has_this_marker", skip)
            total = pytest_run(tree, workers, kind, "not timer", skip)
            rows.append((workers, count, total, fixed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="mosquitto", help="a launchable broker kind (default mosquitto)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, target {args.target}\n")

    result = in_process(args.target, args.rounds)
    rate = result["scenarios"] / result["wall"]
    print("in-process runner (no pytest):")
    print(f"  {result['scenarios']} scenarios in {result['wall']:.2f} s = {rate:.0f} scenarios/s "
          f"({result['failures']} failed)")
    print(f"  per scenario: {1000 * result['wall'] / result['scenarios']:.2f} ms wall, "
          f"{1000 * result['blocked'] / result['scenarios']:.2f} ms waiting for the broker, "
          f"{1000 * (result['wall'] - result['blocked']) / result['scenarios']:.2f} ms harness")
    print(f"  harness process CPU: {result['cpu']:.2f} s ({100 * result['cpu'] / result['wall']:.0f}% of wall)\n")

    print("pytest end to end (scenarios without timers):")
    print("  workers  scenarios  total s  fixed s  scenarios/s (total)  scenarios/s (after start-up)")
    for workers, count, total, fixed in end_to_end(args.target, args.copies):
        print(f"  -n {workers}     {count:9d}  {total:7.2f}  {fixed:7.2f}  {count / total:19.0f}  {count / max(total - fixed, 1e-9):28.0f}")


if __name__ == "__main__":
    main()
