"""SIGTERM (what a CI time-out sends) and SIGINT (Ctrl-C) during a run stop every broker the harness
launched and remove its temporary folder, with and without xdist workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.launch.process import group_members

# A scenario that keeps the run busy long enough to be interrupted in the middle.
WAITING = """\
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: long-wait
    title: A connection that waits, so the run can be interrupted while the broker is up
    refs: [MQTT-3.1.0-1]
    steps:
      - connected: {}
      - wait: {seconds: 30, why: keep the run busy until the signal}
      - disconnect:
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _broker_of(pytest_pid: int, deadline: float) -> tuple[int, Path]:
    """The launched reference broker below the pytest process, and its work folder, once it serves."""
    while time.monotonic() < deadline:
        for pid in _descendants(pytest_pid):
            try:
                command = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"harness.broker" in command and b"--config" in command:
                config = Path(command[command.index(b"--config") + 1].decode())
                workdir = next(p for p in config.parents if p.name.startswith("mqtt-harness-reference-"))
                return pid, workdir
        time.sleep(0.2)
    raise AssertionError("the reference broker did not start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_a_signal_stops_the_launched_broker_and_removes_its_folder(tmp_path: Path, sig: signal.Signals,
                                                                     workers: list[str]) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "wait.yaml").write_text(textwrap.dedent(WAITING))
    run = subprocess.Popen([sys.executable, "-m", "pytest", "scenarios", "-p", "no:cacheprovider", *workers],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        broker, workdir = _broker_of(run.pid, time.monotonic() + 30)
        assert workdir.is_dir()
        time.sleep(1.5)  # the scenario is waiting now
        run.send_signal(sig)
        output, _ = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode != 0, output
    assert "Traceback" not in output, output
    assert re.search(r"interrupted|Interrupted|KeyboardInterrupt", output), output
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (os.path.exists(f"/proc/{broker}") or group_members(broker)):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{broker}") and not group_members(broker), "the broker outlived the run"
    assert not workdir.exists(), f"{workdir} was left behind"
