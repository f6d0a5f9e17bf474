"""The same verdict for every scenario whether the suite runs in one process or on two workers.

The built-in suite without its timer scenarios (`-m "not timer"`), against the launched reference
broker, once at `-n 0` and once at `-n 2`, compared scenario by scenario from results.json (the
timer scenarios' stability is measured by benchmarks/verdict_stability.py, see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN_TIMEOUT_S = 600


def _verdicts(folder: Path, workers: str) -> dict[str, str]:
    reports = folder / f"reports-n{workers}"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not timer", "-n", workers,
                    f"--report-dir={reports}"], cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    results = json.loads((reports / "results.json").read_text())["results"]
    return {nodeid: result["verdict"] for nodeid, result in results.items()}


def test_one_process_and_two_workers_give_the_same_verdicts(tmp_path: Path) -> None:
    alone, shared = _verdicts(tmp_path, "0"), _verdicts(tmp_path, "2")
    assert len(alone) > 300 and set(alone) == set(shared)
    moved = {nodeid: (alone[nodeid], shared[nodeid]) for nodeid in alone if alone[nodeid] != shared[nodeid]}
    assert not moved, moved
    assert "failed" not in alone.values() and "error" not in alone.values()
