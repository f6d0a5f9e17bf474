"""The same verdict for every scenario however the suite is spread: one process or two workers, one scenario
at a time or many in flight (--concurrency).

Each run is a real one of the built-in suite, compared scenario by scenario from results.json:
- without its timer scenarios (`-m "not timer"`), against the launched reference broker, at `-n 0` and
  `-n 2` (the timer scenarios' stability is measured by benchmarks/verdict_stability.py, see
  docs/benchmarks.md);
- the whole suite, timers included, at `--concurrency 1` and at the default, against the launched
  reference broker and mosquitto (where it is installed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN_TIMEOUT_S = 600


def _verdicts(folder: Path, name: str, *options: str) -> dict[str, str]:
    reports = folder / f"reports-{name}"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, f"--report-dir={reports}"],
                         cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert (reports / "results.json").is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((reports / "results.json").read_text())["results"]
    return {nodeid: result["verdict"] for nodeid, result in results.items()}


def _same(first: dict[str, str], second: dict[str, str]) -> None:
    assert len(first) > 300 and set(first) == set(second)
    moved = {nodeid: (first[nodeid], second[nodeid]) for nodeid in first if first[nodeid] != second[nodeid]}
    assert not moved, moved
    assert "failed" not in first.values() and "error" not in first.values()


def test_one_process_and_two_workers_give_the_same_verdicts(tmp_path: Path) -> None:
    _same(_verdicts(tmp_path, "n0", "-m", "not timer", "-n", "0"), _verdicts(tmp_path, "n2", "-m", "not timer", "-n", "2"))


@pytest.mark.parametrize("target", ["reference", "mosquitto"])
def test_one_scenario_at_a_time_and_many_in_flight_give_the_same_verdicts(tmp_path: Path, target: str) -> None:
    if target == "mosquitto" and shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    one = _verdicts(tmp_path, "c1", "--target", target, "-n", "0", "--concurrency", "1")
    many = _verdicts(tmp_path, "default", "--target", target, "-n", "0")
    _same(one, many)
