"""Is the target alive? A valid CONNECT answered by CONNACK 0, then a PINGREQ answered by PINGRESP.

Two uses. The preflight runs it once per protocol version before the first scenario, so a broker
that is down, resets every connection, stays silent or answers garbage stops the run with one line
instead of failing (or, worse, passing) every scenario. And a scenario whose verdict rests on the
broker closing, refusing or staying silent runs it right after: such a pass counts only if the
broker still serves a well-behaved client, as mosquitto's own test suite checks at the end of each
of its tests.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from harness.clients import (
    Address,
    Closed,
    HandshakeFailed,
    PacketReceived,
    RawClient,
    StreamMalformed,
    TlsFailure,
    open_transport,
)
from harness.errors import HarnessError
from harness.wire import Connack, Connect, Disconnect, Pingreq, Pingresp, Publish, Version, describe


class TargetNotAlive(HarnessError):
    """A scenario's checks held, but the broker did not serve a well-behaved client right after it."""


# A CONNACK or PINGRESP is a few bytes: a packet announcing more than this before them is not an answer.
MAX_ANSWER_SIZE = 1 << 20
# How much of what arrived a reason shows in hex.
SHOWN_BYTES = 32
_ALNUM = string.ascii_lowercase + string.digits


def check_alive(address: Address, version: Version, account: Any = None, timeout: float = 5.0,
                client_id: str | None = None, quiet: float = 0.0) -> str | None:
    """None when the broker at `address` completed CONNECT/CONNACK 0 and PINGREQ/PINGRESP within
    `timeout` seconds in all, then sent nothing for `quiet` seconds (a client that subscribed to
    nothing has nothing to get); otherwise one line saying what it did instead."""
    deadline = time.monotonic() + timeout
    client_id = client_id or "hlive" + "".join(secrets.choice(_ALNUM) for _ in range(10))  # 15: fits MQTT 3.1
    try:
        transport = open_transport(address, connect_timeout=timeout)
    except ConnectionRefusedError:
        return f"{address.url}: connection refused (nothing listening)"
    except TimeoutError:
        return f"{address.url}: no TCP connection within {timeout:g} s"
    except (TlsFailure, HandshakeFailed) as exc:
        return f"{address.url}: {exc}"
    except ConnectionResetError:
        # It accepted and reset at once, so fast that the reset came before connect() returned: the
        # same broker as one that resets after the CONNECT, seen a moment earlier (a loaded machine).
        return f"{address.url}, MQTT {version.label}: reset the connection as it opened, before CONNECT could be sent"
    except OSError as exc:
        return f"{address.url}: cannot connect: {exc.strerror or exc}"
    client = RawClient(transport, version, name="liveness", max_packet_size=MAX_ANSWER_SIZE)
    try:
        client.send_packet(Connect(client_id=client_id, clean_session=True, keep_alive=60,
                                   username=getattr(account, "username", None), password=getattr(account, "password", None)))
        problem = _answer(client, Connack, "CONNECT", deadline, timeout, version)
        if problem is None:
            client.send_packet(Pingreq())
            problem = _answer(client, Pingresp, "PINGREQ", deadline, timeout, version)
        if problem is None and quiet > 0:
            problem = _silence(client, quiet, version)
        if problem is None:
            client.send_packet(Disconnect())
        return None if problem is None else f"{address.url}, MQTT {version.label}: {problem}"
    finally:
        client.close()


def _answer(client: RawClient, wanted: type, after: str, deadline: float, timeout: float, version: Version) -> str | None:
    """None if the next packet is a `wanted` (a CONNACK: with reason code 0); else what came instead."""
    name = wanted.__name__.upper()
    event = client.next_event(max(0.0, deadline - time.monotonic()))
    if event is None:
        return f"no {name} within {timeout:g} s of {after}" + _received(client, " (received only: {})")
    if isinstance(event, Closed):
        how = "reset the connection" if event.how == "reset" else "closed the connection"
        return f"{how} after {after} instead of answering {name}" + _received(client, " (having sent: {})")
    if isinstance(event, StreamMalformed):
        return (f"answered {after} with bytes that do not decode ({event.malformed.finding.message}): "
                f"{_hex(event.malformed.raw)}")
    assert isinstance(event, PacketReceived)
    packet = event.decoded.packet
    if isinstance(packet, Publish):
        return _unsolicited(event, version)
    if not isinstance(packet, wanted):
        return f"answered {after} with {describe(packet, version)} instead of {name} ({_hex(event.decoded.raw)})"
    if isinstance(packet, Connack) and packet.reason_code != 0:
        return f"refused the run's account: {describe(packet, version)}"
    return None


def _silence(client: RawClient, quiet: float, version: Version) -> str | None:
    event = client.next_event(quiet)
    if event is None:
        return None
    if isinstance(event, Closed):
        return f"closed the connection within {quiet:g} s of PINGRESP, unasked"
    if isinstance(event, StreamMalformed):
        return f"sent bytes that do not decode after PINGRESP ({event.malformed.finding.message}): {_hex(event.malformed.raw)}"
    assert isinstance(event, PacketReceived)
    if isinstance(event.decoded.packet, Publish):
        return _unsolicited(event, version)
    return f"sent {describe(event.decoded.packet, version)} after PINGRESP, unasked ({_hex(event.decoded.raw)})"


def _unsolicited(event: PacketReceived, version: Version) -> str:
    return f"sent {describe(event.decoded.packet, version)} to a client that subscribed to nothing ({_hex(event.decoded.raw)})"


def _hex(data: bytes) -> str:
    shown = data[:SHOWN_BYTES].hex(" ")
    return shown + (f" ... ({len(data)} bytes)" if len(data) > SHOWN_BYTES else "")


def _received(client: RawClient, template: str) -> str:
    """`template` with what the broker sent so far, in hex; empty when it sent nothing."""
    data = b"".join(entry.data for entry in client.transcript if entry.direction == "received")
    return template.format(_hex(data)) if data else ""

