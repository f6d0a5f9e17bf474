"""Run one fuzz case against a broker and give its verdict; then check the broker is still alive.

Every wait is bounded by `timeout`. After the case's bytes the client sends a PINGREQ: a broker
that must close has to close without answering it; one that must keep working has to answer it.
A fresh CONNECT + PINGREQ afterwards tells a dead broker (no connection) from a hung one (a
connection, no answer) from a healthy one. At the end of a run the retained messages its cases may
have left are cleared, so a run leaves the broker as it found it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

from harness.clients import Closed, PacketReceived, RawClient, TlsFailure, open_transport
from harness.clients.transport import Address
from harness.clients.websocket import HandshakeFailed
from harness.fuzz.cases import Case
from harness.targets import Account
from harness.wire import Connack, Connect, Disconnect, Pingreq, Pingresp, Publish, Version, describe

Verdict = Literal["as specified", "violation", "broker dead", "broker hung", "setup failed"]


@dataclass(frozen=True)
class Outcome:
    case: Case
    verdict: Verdict
    observed: str  # what the broker did, in one line


class Connection:
    def __init__(self, address: Address, account: Account, version: Version, timeout: float) -> None:
        self.address, self.account, self.version, self.timeout = address, account, version, timeout

    def open(self) -> RawClient | str:
        """A client, or why no connection could be made."""
        try:
            transport = open_transport(self.address, connect_timeout=self.timeout)
        except (OSError, TlsFailure, HandshakeFailed) as exc:
            return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return RawClient(transport, self.version, name="fuzz")

    def connect(self, client: RawClient) -> str | None:
        """Send a valid CONNECT; None once CONNACK 0 came, else what came instead."""
        password = self.account.password
        client.send_packet(Connect(client_id="hf" + secrets.token_hex(6), username=self.account.username,
                                   password=password.encode() if isinstance(password, str) else password))
        event = client.next_event(self.timeout)
        if isinstance(event, PacketReceived) and isinstance(event.decoded.packet, Connack):
            return None if event.decoded.packet.reason_code == 0 else describe(event.decoded.packet)
        return _said(event, self.timeout)


def _said(event: object, timeout: float) -> str:
    if event is None:
        return f"nothing within {timeout:g} s"
    if isinstance(event, Closed):
        return f"closed ({event.how})"
    if isinstance(event, PacketReceived):
        return describe(event.decoded.packet)
    return str(event)


def run_case(connection: Connection, case: Case) -> Outcome:
    client = connection.open()
    if isinstance(client, str):
        return Outcome(case, "broker dead", f"no connection: {client}")
    try:
        if not case.before_connect:
            problem = connection.connect(client)
            if problem is not None:
                return Outcome(case, "setup failed", f"the valid CONNECT got {problem}")
        client.send_bytes(case.data, frames=[case.split] if case.split else None)
        client.send_packet(Pingreq())
        observed = _after(client, connection.timeout)
    finally:
        client.close()
    closed, answered = observed.startswith("closed"), observed == "PINGRESP"
    good = closed if case.expect == "close" else answered if case.expect == "works" else closed or answered
    return Outcome(case, "as specified" if good else "violation", observed)


def _after(client: RawClient, timeout: float) -> str:
    """What the broker did after the case: "closed ...", "PINGRESP", or that it stayed silent."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        event = client.next_event(left)
        if event is None:
            break
        if isinstance(event, Closed):
            return f"closed ({event.how})" + (f" after {', '.join(seen)}" if seen else "")
        if isinstance(event, PacketReceived):
            packet = event.decoded.packet
            if isinstance(packet, Pingresp):
                return "PINGRESP"
            if isinstance(packet, Disconnect):  # 5.0: the reason first, then the close
                seen.append(describe(packet))
                continue
            seen.append(type(packet).__name__.upper())
    return f"still open after {timeout:g} s" + (f" (sent {', '.join(seen)})" if seen else "")


def liveness(connection: Connection) -> tuple[Verdict | None, str]:
    """(None, "") for a healthy broker, else ("broker dead" | "broker hung", why)."""
    client = connection.open()
    if isinstance(client, str):
        return "broker dead", f"a fresh connection failed: {client}"
    try:
        problem = connection.connect(client)
        if problem is not None:
            return ("broker hung" if problem.startswith("nothing") else "broker dead"), f"a fresh CONNECT got {problem}"
        client.send_packet(Pingreq())
        event = client.next_event(connection.timeout)
        if isinstance(event, PacketReceived) and isinstance(event.decoded.packet, Pingresp):
            client.send_packet(Disconnect())
            return None, ""
        return "broker hung", f"a fresh connection's PINGREQ got {_said(event, connection.timeout)}"
    finally:
        client.close()


def clear_retained(connection: Connection, topics: list[str]) -> str | None:
    """Delete the retained messages on `topics` (an empty retained PUBLISH each, then a PINGREQ that must
    be answered, so the broker has read them all); None when done, else why not."""
    if not topics:
        return None
    client = connection.open()
    if isinstance(client, str):
        return f"no connection: {client}"
    try:
        problem = connection.connect(client)
        if problem is not None:
            return f"the CONNECT got {problem}"
        for topic in topics:
            client.send_packet(Publish(topic=topic, payload=b"", retain=True))
        client.send_packet(Pingreq())
        while True:
            event = client.next_event(connection.timeout)
            if isinstance(event, PacketReceived) and isinstance(event.decoded.packet, Pingresp):
                client.send_packet(Disconnect())
                return None
            if not isinstance(event, PacketReceived):
                return f"clearing {len(topics)} retained messages: {_said(event, connection.timeout)}"
    finally:
        client.close()
