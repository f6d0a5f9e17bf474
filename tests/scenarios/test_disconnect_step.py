"""The `disconnect` step lets the broker finish with the connection before the scenario goes on.

A broker may not have processed a DISCONNECT when the client's socket is gone: a next step that
connects with the same ClientId then races it (ejabberd's takeover published a will the DISCONNECT
had discarded). The step waits, briefly, for the broker's own close.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from fake_broker_server import FakeBrokerServer

from harness.scenarios import runner as runner_module
from harness.scenarios.model import load_scenarios
from harness.scenarios.runner import Endpoint, ScenarioRunner

RECONNECT = """
defaults: {protocol: "3.1.1", area: session}
scenarios:
  - id: reconnect
    title: A client disconnects, then its ClientId connects again
    refs: [MQTT-3.14.4-3]
    steps:
      - connected: {on: first, client_id: "${cid}"}
      - disconnect: first
      - connected: {on: second, client_id: "${cid}"}
      - disconnect: second
"""


class SlowToCloseBroker(FakeBrokerServer):
    """CONNACK 0 to every CONNECT; `close_after` seconds after a DISCONNECT it closes (None: never)."""

    def __init__(self, close_after: float | None) -> None:
        self.close_after = close_after
        self.closed_at: list[float] = []
        super().__init__()

    def handle(self, conn: socket.socket, number: int) -> None:
        with conn:
            conn.recv(1024)  # CONNECT
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))
            if conn.recv(1024)[:1] != b"\xe0":  # DISCONNECT (or the client's close)
                return
            if self.close_after is None:
                conn.recv(1024)  # until the client gives up and closes
                return
            time.sleep(self.close_after)
            self.closed_at.append(time.monotonic())


def _run(tmp_path: Path, broker: SlowToCloseBroker) -> float:
    path = tmp_path / "scenarios" / "session.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(RECONNECT)
    anonymous = type("A", (), {"username": None, "password": None})()
    started = time.monotonic()
    ScenarioRunner(load_scenarios(path)[0], Endpoint(host="127.0.0.1", port=broker.port, accounts={"default": anonymous}), "d1").run()
    return time.monotonic() - started


def test_the_next_connection_opens_only_once_the_broker_closed_the_last(tmp_path: Path) -> None:
    broker = SlowToCloseBroker(close_after=0.3)
    try:
        _run(tmp_path, broker)
    finally:
        broker.close()
    assert len(broker.accepted_at) == 2 and len(broker.closed_at) >= 1
    assert broker.accepted_at[1] >= broker.closed_at[0]  # not a race: the first was finished with


def test_a_broker_that_never_closes_costs_the_wait_not_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "DISCONNECT_CLOSE_WAIT_S", 0.4)
    broker = SlowToCloseBroker(close_after=None)
    try:
        took = _run(tmp_path, broker)  # passes: keeping the connection open is no violation
    finally:
        broker.close()
    assert len(broker.accepted_at) == 2
    assert took >= 2 * 0.4
