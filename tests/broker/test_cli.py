"""`python -m harness.broker`: config errors, the ready line, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from broker_helpers import REPO, Client, start_broker, stop_process, uid

from harness.wire import Disconnect, Version


def run(*args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "harness.broker", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("limits:\n  max_inflight: many\n", ":2: limits.max_inflight: expected an integer"),
        ("listeners:\n  - {host: 127.0.0.1, port: 70000}\n", ":2: listeners[0].port: 70000 is out of range"),
        ("auth: {allow_anonymous: maybe}\n", "auth.allow_anonymous: expected true or false"),
        ("acl:\n  - {allow: []}\n", "acl[0]: missing field 'user'"),
        ("denied_publish: shout\n", "denied_publish: 'shout'"),
        ("limits: [1\n", "invalid YAML"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(text)
    result = run("--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_and_bad_options(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "nope.yaml: file not found" in result.stderr
    result = run("--personality", "nobody", "--listen", "127.0.0.1:0")
    assert result.returncode == 2 and "personality" in result.stderr and "Traceback" not in result.stderr


def test_ready_line_listen_override_and_sigterm() -> None:
    broker = start_broker({"listeners": [{"host": "127.0.0.1", "port": 1, "transport": "tcp"}]})
    try:
        assert broker.port not in (0, 1)  # --listen 127.0.0.1:0 replaced the file's listener
        assert any("ready" in line and f"127.0.0.1:{broker.port}" in line for line in broker.log)
        c = Client(broker.port, Version.V5)
        c.connect(uid())
        old = Client(broker.port, Version.V311)
        old.connect(uid())
        start = time.monotonic()
        broker.proc.send_signal(signal.SIGTERM)
        assert [(type(p), p.reason_code) for p in c.expect_closed()] == [(Disconnect, 0x8B)]
        assert old.expect_closed() == []
        assert broker.proc.wait(5) == 0
        assert time.monotonic() - start < 3
    finally:
        stop_process(broker.proc)


def test_address_in_use_is_reported() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run("--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1 and "address already in use" in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr
