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
                  "--out", "out", "--alluredir", "allure", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # something found
    record = json.loads((tmp_path / "out" / "fuzz.json").read_text())
    assert record["seed"] == 2 and len(record["runs"][0]["cases"]) == 150
    findings = sorted((tmp_path / "out" / "findings").glob("*.yaml"))
    assert findings and len(findings) <= record["runs"][0]["verdicts"]["violation"]  # identical ones merged
    assert "shrunk from" in "".join(f.read_text() for f in findings)  # minimised where it could be
    results = [json.loads(f.read_text()) for f in (tmp_path / "allure").glob("*-result.json")]
    failed = [r for r in results if r["name"] != "MQTT 3.1.1: 150 fuzz cases"]
    assert len(failed) == len(findings) and {r["status"] for r in results} == {"failed"}
    scenario = next(a for a in failed[0]["attachments"] if a["type"] == "text/yaml")
    assert (tmp_path / "allure" / scenario["source"]).read_text() in {f.read_text() for f in findings}
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


def _answering_once() -> int:
    """A port whose broker answers one connection (CONNACK 0, then PINGRESP to whatever comes) and is then gone."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        listener.close()
        conn.recv(65536)
        conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))
        conn.recv(65536)
        conn.sendall(bytes([0xD0, 0x00]))
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_a_broker_that_answers_the_case_but_takes_no_new_connection_is_dead() -> None:
    from harness.clients.transport import parse_address
    from harness.targets import Account

    port = _answering_once()
    assert next(generate(4, V311)).expect == "works"  # the first case is one the broker must answer, and does
    run = fuzz(Connection(parse_address(f"mqtt://127.0.0.1:{port}"), Account(None), V311, 1.0), seed=4, cases=5)
    assert [o.verdict for o in run.outcomes] == ["broker dead"], run.outcomes
    assert "PINGRESP; then a fresh connection failed" in run.outcomes[0].observed


def test_the_retained_messages_a_run_sets_are_deleted_afterwards(reference) -> None:  # type: ignore[no-untyped-def]
    from harness.clients import PacketReceived, RawClient, open_transport
    from harness.wire import Connect, Suback

    run = fuzz(Connection(reference.address, default_account(reference), V311, 3.0), seed=1, cases=300)
    assert run.retained and run.not_cleared is None  # its cases set some: a PUBLISH with the RETAIN bit flipped on
    account = default_account(reference)
    client = RawClient(open_transport(reference.address, connect_timeout=3), V311)
    try:
        client.send_packet(Connect(client_id="retained-check", username=account.username,
                                   password=account.password.encode() if account.password else None))
        client.next_event(3)
        client.send_packet(Subscribe(packet_id=1, subscriptions=[{"topic_filter": "#", "qos": 0}]))
        client.send_packet(Pingreq())
        seen = []
        while (event := client.next_event(3)) is not None and isinstance(event, PacketReceived):
            seen.append(event.decoded.packet)
            if type(seen[-1]).__name__ == "Pingresp":
                break
    finally:
        client.close()
    assert isinstance(seen[0], Suback) and type(seen[-1]).__name__ == "Pingresp"
    assert [p for p in seen if isinstance(p, Publish)] == []  # no retained message left anywhere


def test_allure_results_say_each_version_run(tmp_path: Path) -> None:
    result = _cli("--target", "reference", "--seed", "3", "--cases", "40", "--protocol", "5.0", "--alluredir", "allure",
                  "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    results = [json.loads(f.read_text()) for f in (tmp_path / "allure").glob("*-result.json")]
    assert [(r["name"], r["status"]) for r in results] == [("MQTT 5.0: 40 fuzz cases", "passed")]
    assert {"name": "seed", "value": "3"} in results[0]["parameters"]


def test_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    result = _cli("--broker", f"mqtt://127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"harness fuzz: cannot reach mqtt://127.0.0.1:{port}: Connection refused"]


def test_a_finding_is_titled_by_its_packet_and_mutation() -> None:
    from harness.fuzz.findings import scenario_text
    from harness.fuzz.runner import Outcome

    before = next(c for c in generate(1, V311) if c.before_connect)
    text = scenario_text(Outcome(before, "violation", "PINGRESP"), seed=1, count=1)
    assert f"title: '{before.base} sent before CONNECT: the server must close the connection'" in text
    mutated = next(c for c in generate(1, V311) if not c.before_connect and c.expect == "close")
    assert f"{mutated.base} with {mutated.mutation}: the server must close" in scenario_text(Outcome(mutated, "violation", "PINGRESP"), 1, 1)
