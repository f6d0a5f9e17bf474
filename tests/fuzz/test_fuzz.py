"""`harness fuzz`: the oracle, reproducible cases, verdicts against the reference broker and mosquitto,
findings that pytest reproduces, a dead broker, and one line for bad input."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.fuzz import fuzz
from harness.fuzz.cases import generate, oracle
from harness.fuzz.runner import Connection
from harness.targets.reach import default_account, started
from harness.wire import Pingreq, Publish, Subscribe, Version, encode

V311, V5 = Version.V311, Version.V5


def test_the_oracle_is_the_strict_decoder() -> None:
    assert oracle(V311, encode(Publish(topic="a/+", payload=b"x"), V311))[:2] == ("close", ("MQTT-3.3.2-2",))
    assert oracle(V311, encode(Publish(topic="a/b", payload=b"x"), V311))[0] == "works"
    # An invalid filter the server may refuse in its SUBACK or by closing: either is as specified.
    assert oracle(V311, encode(Subscribe(packet_id=1, subscriptions=["a/#/b"]), V311))[0] == "either"
    assert oracle(V311, encode(Publish(topic="a/b", payload=b"x"), V311)[:-1]) is None  # incomplete: not a case
    assert oracle(V311, encode(Pingreq(), V311), before_connect=True)[:2] == ("close", ("MQTT-3.1.0-1",))
    assert oracle(V5, bytes([0xE0, 0x00]))is None  # a DISCONNECT ends the connection legitimately


def test_a_seed_gives_the_same_cases_and_another_seed_others() -> None:
    first = [c.data for c in itertools.islice(generate(7, V5), 200)]
    assert first == [c.data for c in itertools.islice(generate(7, V5), 200)]
    assert first != [c.data for c in itertools.islice(generate(8, V5), 200)]
    kinds = {c.expect for c in itertools.islice(generate(7, V5), 200)}
    assert kinds == {"close", "works", "either"}


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    with started("reference") as session:
        yield session.endpoint()


@pytest.mark.parametrize("version", list(Version))
def test_the_reference_broker_has_no_findings(reference, version: Version) -> None:  # type: ignore[no-untyped-def]
    run = fuzz(Connection(reference.address, default_account(reference), version, 3.0), seed=11, cases=300)
    assert len(run.outcomes) == 300 and run.stopped is None
    assert run.violations == [], "\n".join(f"{o.case.base} {o.case.mutation}: {o.observed}" for o in run.violations[:5])
    assert {o.case.expect for o in run.outcomes} == {"close", "works", "either"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "fuzz", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists(), reason="mosquitto is not installed")
def test_findings_against_mosquitto_become_scenarios_pytest_reproduces(tmp_path: Path) -> None:
    result = _cli("--target", "mosquitto", "--seed", "2", "--cases", "150", "--protocol", "3.1.1", "--timeout", "1",
                  "--out", "out", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # something found
    record = json.loads((tmp_path / "out" / "fuzz.json").read_text())
    assert record["seed"] == 2 and len(record["runs"][0]["cases"]) == 150
    findings = sorted((tmp_path / "out" / "findings").glob("*.yaml"))
    assert findings and len(findings) <= record["runs"][0]["verdicts"]["violation"]  # identical ones merged
    assert "shrunk from" in "".join(f.read_text() for f in findings)  # minimised where it could be
    against = {}
    for target in ("mosquitto", "reference"):
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--target", target,
                              "out/findings"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        against[target] = run.stdout.strip().splitlines()[-1]
    assert f"{len(findings)} failed" in against["mosquitto"], against  # every finding reproduces there
    assert f"{len(findings)} passed" in against["reference"], against  # and is a real rule: the reference keeps it


def test_a_broker_that_dies_is_said_and_ends_the_run(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:  # answers two connections with CONNACK 0 and a PINGRESP, then is gone
        for _ in range(2):
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))
            conn.recv(65536)
            conn.sendall(bytes([0xD0, 0x00]))
            conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    result = _cli("--broker", f"mqtt://127.0.0.1:{port}", "--protocol", "3.1.1", "--seed", "1", "--cases", "20",
                  "--timeout", "1", "--out", "out", cwd=tmp_path)
    assert result.returncode == 1
    record = json.loads((tmp_path / "out" / "fuzz.json").read_text())
    run = record["runs"][0]
    assert run["stopped"] and run["cases"][-1]["verdict"] == "broker dead"
    assert "| 3.1.1 |" in result.stdout and "Traceback" not in result.stderr


def test_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    result = _cli("--broker", f"mqtt://127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"harness fuzz: cannot reach mqtt://127.0.0.1:{port}: Connection refused"]
