"""`expect` with `may_send` and `or_close`, and `expect_nothing` with `may_send`, against a scripted broker.

The scripted broker answers CONNECT with CONNACK 0 and then, for each PINGREQ or SUBSCRIBE it reads,
writes the next canned reply (bytes, or None to close the connection).
"""

import socket
import textwrap
import threading
from dataclasses import dataclass

import pytest

from harness.scenarios.model import load_scenarios
from harness.scenarios.runner import Endpoint, ScenarioFailed, ScenarioRunner

CONNACK = bytes.fromhex("20 02 00 00")
PINGRESP = bytes.fromhex("d0 00")
SUBACK_0 = bytes.fromhex("90 03 00 01 00")
SUBACK_80 = bytes.fromhex("90 03 00 01 80")
PUBLISH_A = bytes.fromhex("30 05 00 01 61 41 41")  # topic "a", payload "AA", QoS 0
PUBLISH_B = bytes.fromhex("30 05 00 01 62 42 42")  # topic "b", payload "BB", QoS 0


@dataclass
class Account:
    username: str = "u"
    password: str = "p"


class ScriptedBroker:
    def __init__(self, replies):
        self.replies = list(replies)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            buffer = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                while len(buffer) >= 2 and len(buffer) >= 2 + buffer[1]:
                    packet, buffer = buffer[: 2 + buffer[1]], buffer[2 + buffer[1]:]
                    if packet[0] >> 4 == 1:
                        conn.sendall(CONNACK)
                        continue
                    if packet[0] >> 4 == 14 or not self.replies:
                        continue
                    reply = self.replies.pop(0)
                    if reply is None:
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    conn.sendall(reply)

    def close(self):
        self.server.close()


def run(tmp_path, steps: str, replies) -> None:
    text = "defaults: {protocol: '3.1.1', area: test}\nscenarios:\n  - id: s\n    title: t\n    refs: []\n    steps:\n"
    text += textwrap.indent(textwrap.dedent(steps), " " * 6)
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    scenario, = load_scenarios(path)
    broker = ScriptedBroker(replies)
    try:
        endpoint = Endpoint(host="127.0.0.1", port=broker.port, accounts={"default": Account()})
        ScenarioRunner(scenario, endpoint, "cid", timeout=1.0).run()
    finally:
        broker.close()


SUBSCRIBE_THEN = """
- connected:
- send: {packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: a, qos: 0}]}
"""


@pytest.mark.parametrize("reply", [SUBACK_80, None], ids=["suback", "close"])
def test_or_close_accepts_the_packet_or_a_close(tmp_path, reply):
    run(tmp_path, SUBSCRIBE_THEN + "- expect: {packet: suback, reason_codes: [0x80], or_close: true}\n", [reply])


def test_or_close_still_checks_the_packet(tmp_path):
    with pytest.raises(ScenarioFailed, match=r"(?s)or the broker closes the connection.*mismatch: reason_codes\[0\]"):
        run(tmp_path, SUBSCRIBE_THEN + "- expect: {packet: suback, reason_codes: [0x80], or_close: true}\n", [SUBACK_0])


def test_without_or_close_a_close_fails(tmp_path):
    with pytest.raises(ScenarioFailed, match="received: connection closed"):
        run(tmp_path, SUBSCRIBE_THEN + "- expect: {packet: suback}\n", [None])


def test_may_send_lets_listed_packets_come_first_once_each(tmp_path):
    steps = SUBSCRIBE_THEN + "- expect: {packet: suback, may_send: [{packet: publish, topic: a}]}\n"
    run(tmp_path, steps, [PUBLISH_A + SUBACK_0])
    run(tmp_path, steps, [SUBACK_0])  # may, not must
    with pytest.raises(ScenarioFailed, match="mismatch: packet: expected SUBACK, got PUBLISH"):
        run(tmp_path, steps, [PUBLISH_A + PUBLISH_A + SUBACK_0])
    with pytest.raises(ScenarioFailed, match="may come: PUBLISH topic='a'"):
        run(tmp_path, steps, [PUBLISH_B + SUBACK_0])


def test_expect_nothing_may_send(tmp_path):
    steps = "- connected:\n- expect_nothing: {may_send: [{packet: publish, payload: AA}, {packet: publish, payload: BB}]}\n"
    run(tmp_path, steps, [PUBLISH_B + PUBLISH_A + PINGRESP])
    run(tmp_path, steps, [PINGRESP])
    with pytest.raises(ScenarioFailed, match="expected: nothing but PUBLISH payload='AA' or PUBLISH payload='BB'"):
        run(tmp_path, steps, [PUBLISH_A + PUBLISH_A + PINGRESP])


def test_plain_expect_nothing_still_fails_on_any_packet(tmp_path):
    with pytest.raises(ScenarioFailed, match=r"expected: nothing \(PINGRESP to the barrier PINGREQ\)"):
        run(tmp_path, "- connected:\n- expect_nothing:\n", [PUBLISH_A + PINGRESP])


def test_expect_close_after_or_close_accepted_the_close(tmp_path):
    steps = SUBSCRIBE_THEN + "- expect: {packet: suback, or_close: true}\n- expect_close:\n"
    run(tmp_path, steps, [None])  # the close came instead of SUBACK: the later expect_close is that close
    with pytest.raises(ScenarioFailed, match="expected: the broker closes the connection"):
        run(tmp_path, steps, [SUBACK_0])  # SUBACK came: the connection stays open, expect_close still fails


def test_save_takes_a_nested_field(tmp_path):
    steps = SUBSCRIBE_THEN + (
        "- expect: {packet: suback, save: {code: reason_codes.0}}\n"
        "- send: {packet: subscribe, packet_id: 2, subscriptions: [{topic_filter: a, qos: '${code}'}]}\n"
        "- expect: {packet: suback, reason_codes: ['${code}']}\n"
    )
    run(tmp_path, steps, [SUBACK_80, SUBACK_80])
    with pytest.raises(Exception, match="save: SUBACK has no field 'properties.reason_string'"):
        run(tmp_path, SUBSCRIBE_THEN + "- expect: {packet: suback, save: {why: properties.reason_string}}\n", [SUBACK_0])


def test_expect_close_names_what_may_send_already_accepted(tmp_path):
    # mosquitto over WebSocket: the allowed refusal came, then a DISCONNECT the step does not allow.
    # The failure must say the allowed packet came, not "before it: nothing".
    steps = SUBSCRIBE_THEN + "- expect_close: {may_send: [{packet: suback, reason_codes: [0x80]}]}\n"
    with pytest.raises(ScenarioFailed, match=r"before it: SUBACK .*; it came: SUBACK .*\)\nreceived: PUBLISH"):
        run(tmp_path, steps, [SUBACK_80 + PUBLISH_A])
