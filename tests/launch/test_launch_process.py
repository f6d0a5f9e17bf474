"""BrokerProcess against a stand-in broker: readiness, early exit, timeout, stop of the whole group."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.launch import BrokerProcess, LaunchError, PortInUseError, free_port
from harness.launch.process import group_members, meaningful_line, port_accepts

# A stand-in broker: `fake.py MODE PORT`. It listens on PORT and prints "ready" unless MODE says
# otherwise; "child" also leaves a grandchild in its process group, as real brokers' helpers do.
FAKE = textwrap.dedent(
    """
    import signal, socket, subprocess, sys, time
    mode, port = sys.argv[1], int(sys.argv[2])
    print("starting", flush=True)
    if mode == "exit":
        print("fatal: bad value for option frobnicate", file=sys.stderr)
        print("", file=sys.stderr)
        sys.exit(3)
    if mode == "hang":
        time.sleep(60)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "child":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    if mode != "log-only":
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
    print("broker ready", file=sys.stderr, flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def fake(tmp_path: Path):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)

    def make(mode: str, port: int | None = None, **kwargs: object) -> BrokerProcess:
        port = port or free_port()
        return BrokerProcess(
            "fake", [sys.executable, str(script), mode, str(port)], host="127.0.0.1", port=port,
            workdir=tmp_path / "work", **kwargs,
        )  # fmt: skip

    return make


def assert_gone_but_port(proc: BrokerProcess) -> None:
    assert proc.pid is not None
    assert group_members(proc.pid) == [], "processes left in the broker's process group"
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


def assert_gone(proc: BrokerProcess) -> None:
    assert_gone_but_port(proc)
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", proc.port))


def test_free_port_gives_a_bindable_loopback_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_ready_by_tcp_then_stop_leaves_no_process_in_the_group(fake) -> None:
    proc = fake("child").start()
    assert proc.running and port_accepts("127.0.0.1", proc.port)
    assert proc.pid is not None and os.getpgid(proc.pid) == proc.pid  # its own process group
    assert len(group_members(proc.pid)) == 2  # the broker and its helper
    proc.stop()
    assert_gone(proc)
    proc.stop()  # idempotent


def test_ready_by_log_line_alone(fake) -> None:
    with fake("log-only", ready_pattern=r"broker (ready)", tcp_ready=False) as proc:
        assert proc.ready_match is not None and proc.ready_match.group(1) == "ready"
        assert not port_accepts("127.0.0.1", proc.port)
    assert_gone(proc)


def test_exit_at_startup_names_broker_and_last_meaningful_line(fake) -> None:
    proc = fake("exit")
    with pytest.raises(LaunchError) as caught:
        proc.start()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("fake: exited with code 3 at startup: fatal: bad value for option frobnicate")
    assert str(proc.log_path) in message
    assert_gone(proc)


def test_not_ready_within_timeout_is_an_error_and_is_cleaned_up(fake) -> None:
    proc = fake("hang", timeout=0.3)
    with pytest.raises(
        LaunchError, match=r"^fake: not ready on 127\.0\.0\.1:\d+ after 0\.3 s; last log line: starting"
    ):
        proc.start()
    assert_gone(proc)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(fake) -> None:
    proc = fake("ignore-term", stop_timeout=0.3).start()
    proc.stop()
    assert proc.returncode == -9
    assert_gone(proc)


def test_port_served_by_someone_else_is_refused_before_starting(fake) -> None:
    # Otherwise the TCP probe would take the other server for our broker.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = fake("plain", port=taken.getsockname()[1])
        with pytest.raises(
            PortInUseError, match=r"^fake: 127\.0\.0\.1:\d+ is already in use by another process$"
        ):
            proc.start()
        assert proc.pid is None  # never started


def test_lost_port_race_is_reported_as_port_in_use(fake) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: only the broker's own bind notices
        proc = fake("plain", port=taken.getsockname()[1])
        with pytest.raises(
            PortInUseError, match=r"^fake: exited with code 1 at startup: OSError: .*Address already in use"
        ):
            proc.start()
        assert_gone_but_port(proc)


def test_missing_binary_is_one_line() -> None:
    proc = BrokerProcess("ghost", ["/nonexistent/ghostd"], host="127.0.0.1", port=1, workdir=Path("/tmp"))
    with pytest.raises(LaunchError, match=r"^ghost: binary /nonexistent/ghostd not found or not executable$"):
        proc.start()


def test_meaningful_line_skips_timestamps_blanks_and_noise() -> None:
    log = "1700000000: starting\n1700000001: Error: bad thing.\n1700000001: Error found at x.conf:2.\n\n"
    assert meaningful_line(log) == "Error found at x.conf:2."
    assert meaningful_line(log, re.compile("^Error found")) == "Error: bad thing."
    assert meaningful_line("") == "(no log output)"


def test_broker_left_running_is_stopped_when_the_interpreter_exits(tmp_path: Path) -> None:
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    program = textwrap.dedent(
        f"""
        import sys
        from harness.launch import BrokerProcess, free_port
        port = free_port()
        proc = BrokerProcess("fake", [sys.executable, {str(script)!r}, "child", str(port)],
                             host="127.0.0.1", port=port, workdir={str(tmp_path / "work")!r}).start()
        print(proc.pid)
        del proc  # dropped without stop(): the atexit hook must still stop it
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=10, cwd=root, check=True
    )
    pid = int(done.stdout.strip())
    try:
        assert group_members(pid) == []
    finally:  # a failure must not leave the stand-in running either
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
