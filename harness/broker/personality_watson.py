"""IBM Watson IoT Platform (shared seeds/watson-iot-mqtt-applications.txt; ids W-* in harness/spec/vendors.tsv).

Devices connect as `d:orgId:typeId:deviceId`; the platform itself publishes JSON monitoring
messages about them on `iot-2/type/typeId/id/deviceId/mon` (W-MON-DEVICE), with the close codes
of W-CLOSE-CODES. Other ClientIds (the harness's own clients) are left as the spec has them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from harness.broker.personalities import PERSONALITIES, ClientInfo, Personality
from harness.broker.retained import Message

# W-CLOSE-CODES: the broker's close reasons (connection.py) -> Watson's code and reason string.
NORMAL = 0
CLOSE_CODES: list[tuple[str, int, str]] = [
    ("client disconnected", NORMAL, "The connection completed normally"),
    ("connection lost", 91, "The connection was closed by the client"),
    ("session taken over", 288, "The client ID was reused"),
    ("keep alive timeout", 160, "The connection timed out"),
    ("not authorized", 180, "The operation is not authorized"),
    ("too large", 287, "The message size is too large for this endpoint"),
]
CLOSED_BY_SERVER = (92, "The connection was closed by the server")


def close_code(reason: str) -> tuple[int, str]:
    for prefix, code, text in CLOSE_CODES:
        if prefix in reason:
            return code, text
    return CLOSED_BY_SERVER


def device_of(client_id: str) -> tuple[str, str] | None:
    """(typeId, deviceId) of a device ClientId `d:orgId:typeId:deviceId`, else None."""
    parts = client_id.split(":")
    if len(parts) == 4 and parts[0] == "d" and all(parts[1:]):
        return parts[2], parts[3]
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WatsonPersonality(Personality):
    name = "watson-iot"

    def _monitor(self, client: ClientInfo, action: str, retain: bool, fields: dict[str, object]) -> None:
        device = device_of(client.client_id)
        if device is None or self.broker is None:
            return
        listener = self.config.listeners[0]
        body: dict[str, object] = {
            "Action": action,
            "Time": _now(),
            "ClientAddr": client.address[0] if client.address else "",
            "ClientID": client.client_id,
            "Port": listener.port,
            "Secure": listener.transport in ("tls", "wss"),
            "Protocol": f"mqtt{client.version}-{listener.transport}",
        }
        if client.username:
            body["User"] = client.username
        body.update(fields)
        # W-MON-DEVICE: all monitoring messages are QoS 0; Connect and Disconnect are retained.
        topic = f"iot-2/type/{device[0]}/id/{device[1]}/mon"
        self.broker.publish(Message(topic, json.dumps(body).encode(), 0, retain))

    def on_connected(self, client: ClientInfo) -> None:
        client.extra["connect_time"] = _now()
        client.extra["read_msg"] = 0
        self._monitor(client, "Connect", True, {"ConnectTime": client.extra["connect_time"]})

    def on_disconnected(self, client: ClientInfo, reason: str) -> None:
        code, text = close_code(reason)
        fields: dict[str, object] = {"ConnectTime": client.extra.get("connect_time", "")}
        if code != NORMAL:  # CloseCode and Reason are left out for a normal close
            fields.update(CloseCode=code, Reason=text)
        # The broker does not count bytes per connection; messages read are counted here.
        fields.update(ReadBytes=0, ReadMsg=client.extra.get("read_msg", 0), WriteBytes=0, WriteMsg=0)
        self._monitor(client, "Disconnect", True, fields)

    def on_publish(self, client: ClientInfo, message: Message) -> Message | None:
        client.extra["read_msg"] = client.extra.get("read_msg", 0) + 1
        if not message.retain:
            return message
        # W-NO-RETAIN: the retain flag is overridden to false: delivered live, never stored.
        return Message(message.topic, message.payload, message.qos, False, message.properties, message.origin,
                       message.remaining_expiry())


PERSONALITIES[WatsonPersonality.name] = WatsonPersonality
