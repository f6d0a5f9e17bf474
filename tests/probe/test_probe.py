"""`harness probe`: its drafts against the committed profiles of every broker the harness launches, the
files it writes, and one clear line for a broker it cannot probe."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.probe import run_probe
from harness.probe.checks import Draft, Finding, KeepaliveCheck
from harness.probe.compare import against_target, differences
from harness.probe.draft import write
from harness.targets import TargetNotInstalled, target_from_file
from harness.targets.profiles import load_profile
from harness.targets.reach import default_account, started
from harness.wire import Version

# Every broker the harness launches, and each personality of the reference broker.
LAUNCHABLE = ["reference", "reference-limited", "mosquitto", "amqtt", "aedes", "rabbitmq", "ejabberd",
              "reference-cumulocity", "reference-cumulocity-legacy", "reference-itron", "reference-watson-iot",
              "reference-cloudplugs"]


@pytest.mark.parametrize("name", LAUNCHABLE)
def test_the_drafted_profile_agrees_with_the_committed_one(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        with started(name) as session:
            endpoint = session.endpoint()
            draft, probe, _ = run_probe(endpoint.address, default_account(endpoint))
            found = against_target(draft, session)
    except TargetNotInstalled as exc:
        pytest.skip(str(exc))
    assert draft.stopped is None
    assert not found, f"{name}: the probe and the committed profile differ:\n" + "\n".join(map(str, found))
    # What it writes reads back as a profile and a targets entry that uses it.
    paths = write(tmp_path, draft, probe.record, "drafted", endpoint.address.url, "now", 1.0, credentials=True)
    drafted = load_profile(str(paths["profile"]))
    assert drafted.protocols == frozenset(draft.accepted())
    assert drafted.capabilities == {k: f.value for k, f in draft.capabilities.items()}
    monkeypatch.setenv("MQTT_USER", "someone")
    monkeypatch.setenv("MQTT_PASSWORD", "secret")
    entry = target_from_file(paths["targets"], "drafted")
    assert Path(entry.profile) == paths["profile"].resolve()


def test_a_difference_names_the_field_and_its_evidence() -> None:
    draft = Draft(protocols={Version.V311: Finding(True, "CONNACK 0")},
                  capabilities={"qos2": Finding(False, "SUBACK granted 1"), "topic_alias": Finding(True, "announced 10")},
                  settings={"keepalive_grace": Finding(4.0, "closed 6.5 s after")})
    found = differences(draft, frozenset({Version.V311, Version.V5}), {"qos2": True}, {}, {"keepalive_grace": 6})
    assert [d.field for d in found] == ["protocols", "capabilities.qos2"]  # topic_alias: left to the CONNACK; 4 <= 6
    assert "SUBACK granted 1" in str(found[1])
    late = differences(draft, frozenset({Version.V311}), {"qos2": False}, {}, {})
    assert [d.field for d in late] == ["settings.keepalive_grace"]  # measured 4 s, the suite waits 1 s


class DyingBroker:
    """Answers the first `serve` connections with a 3.1.1 CONNACK 0, then stops listening and closes them."""

    def __init__(self, serve: int) -> None:
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DyingBroker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop()

    def _run(self) -> None:
        for _ in range(self.serve):
            conn, _ = self.listener.accept()
            conn.recv(65536)
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))
            self.connections.append(conn)
        self._stop()

    def _stop(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


def _probe_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "probe", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_a_broker_that_stops_answering_mid_probe_keeps_what_was_found(tmp_path: Path) -> None:
    with DyingBroker(serve=3) as broker:
        result = _probe_cli(f"mqtt://127.0.0.1:{broker.port}", "--out", "out", "--name", "dying", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "stopped taking connections" in last and "Traceback" not in result.stderr
    profile = (tmp_path / "out" / "dying.yaml").read_text()
    assert "INCOMPLETE" in profile and '"3.1.1"' in profile  # what it found before the broker went away
    assert (tmp_path / "out" / "probe.json").is_file()


def test_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    result = _probe_cli(f"mqtt://127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"harness probe: cannot reach mqtt://127.0.0.1:{port}: Connection refused"]
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_tls_failure_is_one_line(tmp_path: Path) -> None:
    with DyingBroker(serve=1) as broker:  # answers a TLS ClientHello with MQTT bytes
        result = _probe_cli(f"mqtts://127.0.0.1:{broker.port}", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"harness probe: cannot reach mqtts://127.0.0.1:{broker.port}: ")


def test_a_url_and_a_target_together_are_refused(tmp_path: Path) -> None:
    result = _probe_cli("mqtt://127.0.0.1:1", "--target", "reference", cwd=tmp_path)
    assert result.returncode == 2 and "one of them" in result.stderr


def test_a_refused_login_is_one_line(tmp_path: Path) -> None:
    with started("reference") as session:
        address = session.endpoint().address
        result = _probe_cli(f"mqtt://nobody:wrong@{address.host}:{address.port}", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the login with the credentials given (3.1, 3.1.1, 5.0)" in lines[0]


def test_probe_then_run_the_suite_with_the_draft(tmp_path: Path) -> None:
    """The README's workflow for a broker nobody has profiled: probe, then pytest with the targets entry."""
    with started("reference") as session:
        endpoint = session.endpoint()
        account = endpoint.accounts["default"]
        url = f"mqtt://{account.username}:{account.password}@{endpoint.host}:{endpoint.port}"
        probed = _probe_cli(url, "--name", "mine", "--out", "drafted", cwd=tmp_path)
        assert probed.returncode == 0, probed.stderr
        assert "run the suite with it: pytest --targets-file drafted/targets.yaml --target mine" in probed.stdout
        assert "  QoS 1 and 2: QoS 1 works; QoS 2 works" in probed.stdout.splitlines()  # progress, a line per check
        assert account.password not in (tmp_path / "drafted" / "targets.yaml").read_text() + probed.stdout
        env = {**os.environ, "MQTT_USER": account.username, "MQTT_PASSWORD": account.password}
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--targets-file",
                              "drafted/targets.yaml", "--target", "mine", "-k", "clientid or will"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "target mine (from drafted/targets.yaml), profile mine" in run.stdout
    assert " passed" in run.stdout.splitlines()[-1] and "failed" not in run.stdout.splitlines()[-1]


class RefusingBroker(DyingBroker):
    """Answers the first `serve` connections with CONNACK 0, every later one with CONNACK 3 (server unavailable)."""

    def _run(self) -> None:
        served = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00 if served < self.serve else 0x03]))
            served += 1
            self.connections.append(conn)


def test_a_broker_that_starts_refusing_mid_probe_keeps_what_was_found(tmp_path: Path) -> None:
    with RefusingBroker(serve=3) as broker:
        result = _probe_cli(f"mqtt://127.0.0.1:{broker.port}", "--out", "out", "--name", "busy", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the broker refused a plain CONNECT during the" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert "INCOMPLETE" in (tmp_path / "out" / "busy.yaml").read_text()


def _keepalive_verdict(closes: dict[int, tuple[float | None, str]]) -> tuple[Draft, str]:
    check = KeepaliveCheck.__new__(KeepaliveCheck)
    check.closes, check.skipped, check.error = closes, None, None
    check._thread = threading.Thread(target=lambda: None)
    check._thread.start()
    draft = Draft()
    return draft, check.join(draft)


def test_keepalive_lateness_becomes_the_grace_but_a_multiple_does_not() -> None:
    draft, line = _keepalive_verdict({1: (1.52, "closed"), 2: (3.01, "closed")})
    assert draft.settings["keepalive_grace"].value == 1.0 and "grace" in line  # on time
    draft, _ = _keepalive_verdict({1: (4.6, "closed"), 2: (6.1, "closed")})  # a constant 3.1 s late: sampling
    assert draft.settings["keepalive_grace"].value == 4.0
    draft, line = _keepalive_verdict({1: (3.0, "closed"), 2: (6.01, "closed")})  # RabbitMQ: 3 x Keep Alive
    assert draft.settings["keepalive_grace"].value == 1.0 and "3.0 x Keep Alive" in line
    assert draft.observations["keep alive multiple"].value == 3.0
    draft, line = _keepalive_verdict({1: (None, "still open after 9.5 s"), 2: (3.0, "closed")})
    assert line == "not enforced within the wait" and draft.observations["keep alive enforced"].value is False
