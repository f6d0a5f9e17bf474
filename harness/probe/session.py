"""The probe's conversation with a broker: connections, bounded waits, and a record of every step.

Every exchange goes through the harness's own raw client and codec, so what the record says was
sent and received is what was on the wire. Each wait is bounded; a broker that stops taking
connections part way through raises BrokerStopped, and the probe keeps what it had found.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.clients import Closed, PacketReceived, RawClient, StreamMalformed, TlsFailure, open_transport
from harness.clients.transport import Address
from harness.clients.websocket import HandshakeFailed
from harness.errors import HarnessError
from harness.targets import Account
from harness.wire import Connack, Connect, Disconnect, Packet, Version, describe

# How long the probe waits for an answer that a working broker gives at once.
ANSWER_S = 3.0


class BrokerStopped(HarnessError):
    """The broker took connections earlier in the probe and no longer does (or no longer answers)."""


class Unreachable(HarnessError):
    """The very first connection failed: nothing was probed."""


@dataclass
class Connection:
    """One probe connection: the client, and what its CONNECT got (a CONNACK, a close, or nothing)."""

    client: RawClient
    connack: Connack | None
    outcome: str  # "CONNACK reason_code=0 ...", "closed (fin) ...", "nothing within 3 s"

    @property
    def accepted(self) -> bool:
        return self.connack is not None and self.connack.reason_code == 0


@dataclass
class ProbeSession:
    address: Address
    account: Account = field(default_factory=lambda: Account(None, None))
    progress: Callable[[str], None] = lambda line: None
    record: list[dict[str, Any]] = field(default_factory=list)
    check: str = "start"  # the check being run, for the record and for BrokerStopped's message
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    _connected_once: bool = False
    _open: list[RawClient] = field(default_factory=list)

    @property
    def topic(self) -> str:
        """A topic prefix of this probe's own (under mqc/, the prefix the launched brokers' ACLs allow)."""
        return f"mqc/probe{self.token}"

    def client_id(self, suffix: str) -> str:
        return f"hp{self.token}{suffix}"[:23]

    def log(self, sent: str, received: str, **extra: Any) -> None:
        self.record.append({"check": self.check, "sent": sent, "received": received, **extra})

    # -- connections --------------------------------------------------------------------------

    def connect(self, version: Version, *, client_id: str | None = None, credentials: bool = True,
                wait: float = ANSWER_S, **fields: Any) -> Connection:
        """Open a connection and send CONNECT (the default account's credentials unless told not to)."""
        connect = Connect(client_id=self.client_id("c") if client_id is None else client_id,
                          username=self.account.username if credentials else None,
                          password=_bytes(self.account.password) if credentials else None, **fields)
        try:
            transport = open_transport(self.address, connect_timeout=wait)
        except (OSError, TlsFailure, HandshakeFailed) as exc:
            reason = _reason(exc)
            if self._connected_once:
                raise BrokerStopped(f"the broker stopped taking connections during the {self.check} check: {reason}") from None
            raise Unreachable(f"cannot reach {self.address.url}: {reason}") from None
        self._connected_once = True
        client = RawClient(transport, version, name="probe")
        self._open.append(client)
        failed = self.send(client, connect)
        answer = failed or self.next(client, wait)
        connack = answer if isinstance(answer, Connack) else None
        outcome = self.said(answer, wait)
        self.log(f"CONNECT {version.label} {_connect_text(connect)}", outcome)
        return Connection(client, connack, outcome)

    def next(self, client: RawClient, wait: float = ANSWER_S) -> Packet | Closed | None:
        """The next packet from the broker, its close, or None when nothing came within `wait`."""
        event = client.next_event(wait)
        while isinstance(event, StreamMalformed):
            self.log("", f"malformed: {event}")
            event = client.next_event(wait)
        if isinstance(event, PacketReceived):
            return event.decoded.packet
        return event if isinstance(event, Closed) else None

    def said(self, answer: Packet | Closed | None, wait: float = ANSWER_S) -> str:
        if answer is None:
            return f"nothing within {wait:g} s"
        if isinstance(answer, Closed):
            return f"closed ({answer.how}): {answer.detail}"
        return describe(answer)

    def send(self, client: RawClient, packet: Packet) -> Closed | None:
        """Send `packet`; the close when the broker had already closed the connection (the write failed)."""
        try:
            client.send_packet(packet)
        except OSError as exc:  # ssl.SSLError included
            return client.closed or Closed("error", f"writing {describe(packet)} failed: {_reason(exc)}", 0.0)
        return None

    def exchange(self, client: RawClient, packet: Packet, wait: float = ANSWER_S) -> Packet | Closed | None:
        """Send `packet`, return the broker's next answer, and record both."""
        answer = self.send(client, packet) or self.next(client, wait)
        self.log(describe(packet), self.said(answer, wait))
        return answer

    def close(self, connection: Connection | RawClient, *, disconnect: bool = True, abort: bool = False) -> None:
        client = connection.client if isinstance(connection, Connection) else connection
        if disconnect and client.closed is None and not abort:
            with contextlib.suppress(OSError):
                client.send_packet(Disconnect())
        client.close(abort=abort)
        if client in self._open:
            self._open.remove(client)

    def close_all(self) -> None:
        for client in list(self._open):
            self.close(client, disconnect=False)

    def sibling(self, check: str) -> ProbeSession:
        """A session of its own (for a check on another thread) to the same broker, under the same name."""
        return ProbeSession(self.address, self.account, token=self.token, check=check,
                            _connected_once=self._connected_once)


def _bytes(password: str | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _connect_text(connect: Connect) -> str:
    parts = [f"client_id={str(connect.client_id)!r}" if len(str(connect.client_id)) <= 40
             else f"client_id=<{len(str(connect.client_id))} characters>",
             f"clean={int(connect.clean_session)}", f"keep_alive={connect.keep_alive}"]
    if connect.username is not None:
        parts.append("with credentials")
    if connect.will is not None:
        parts.append(f"will on {connect.will.topic}")
    if connect.properties:
        parts.append(f"properties={connect.properties}")
    return " ".join(parts)
