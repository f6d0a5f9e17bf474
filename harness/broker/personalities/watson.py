"""IBM Watson IoT Platform (the applications page, shared seeds/watson-iot-mqtt-applications.txt; ids
W-* in harness/spec/vendors.tsv).

ClientIds:
- `d:orgId:typeId:deviceId`, a device: monitored on `iot-2/type/typeId/id/deviceId/mon` (W-MON-DEVICE);
- `a:orgId:appId`, an application (W-APP-AUTH): user name the API key `a-orgId-...`, password its
  token; monitored on `iot-2/app/appId/mon` (W-MON-APP); publishes and subscribes only in the
  documented topic space (W-TOPICS);
- `A:orgId:appId`, a scalable application (W-SHARED-APP): several connections at once, each event
  to one of them, clean session only, appId `[A-Za-z0-9._-]+`;
- any of these in the quickstart organisation (W-QUICKSTART): no credentials, no TLS, no commands,
  no `+` for a device or application id, no scalable applications.
Other ClientIds (the harness's own generic clients) are left as the spec has them.

Devices log in with the user name `use-token-auth` and their device token (IBM's device
documentation; the applications page does not say it). The reference broker registers every device
of `org`, whatever its type and id, with one token, `DEVICE_TOKEN`: the harness's `device` account
(`platform_accounts`). A device ClientId of another organisation, or one logging in otherwise (an
API key), is refused with CONNACK 5 (FailedConnect CloseCode 180).

Settings (`personality_options`, from the profile and targets.yaml): `org` (the organisation of the
harness accounts' API keys and of its devices), `quickstart_org`, `topic_violation` (close | deny).
The device type and id scenarios use (`device_type`, `device_id`) concern the scenarios only.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from harness.broker.personality import ClientInfo, Decision, Personality, Refusal
from harness.broker.retained import Message

# W-CLOSE-CODES: the broker's close reasons (connection.py, and ours below) -> Watson's code and text.
NORMAL = 0
TOPIC_NOT_VALID = "topic not valid"
NOT_AUTHORIZED = "not authorized"
CLOSE_CODES: list[tuple[str, int, str]] = [
    ("client disconnected", NORMAL, "The connection completed normally"),
    ("connection lost", 91, "The connection was closed by the client"),
    ("session taken over", 288, "The client ID was reused"),
    ("keep alive timeout", 160, "The connection timed out"),
    (TOPIC_NOT_VALID, 276, "The topic is not valid"),
    (NOT_AUTHORIZED, 180, "The operation is not authorized"),
    ("too large", 287, "The message size is too large for this endpoint"),
]
CLOSED_BY_SERVER = (92, "The connection was closed by the server")
# A refused CONNECT's return code (3.x; 5.0 reason codes are mapped to these) -> FailedConnect's CloseCode.
FAILED_CONNECT_CODES: dict[int, tuple[int, str]] = {
    2: (166, "The ClientID is not valid"),
    3: (104, "The server capacity is reached"),
    4: (180, "The operation is not authorized"),
    5: (180, "The operation is not authorized"),
}

APP_ID = re.compile(r"[A-Za-z0-9._-]+")  # W-SHARED-APP
# Devices: the user name every device logs in with, and the token the reference broker registers its
# devices with (a harness value, not a secret: the broker listens on loopback for one run).
DEVICE_USER = "use-token-auth"
DEVICE_TOKEN = "harness-device-token"
SECURE = ("tls", "wss")


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


def app_of(client_id: str) -> tuple[str, str, bool] | None:
    """(orgId, appId, shared) of an application ClientId `a:orgId:appId` or `A:orgId:appId`, else None."""
    parts = client_id.split(":", 2)
    if len(parts) == 3 and parts[0] in ("a", "A") and parts[1] and parts[2]:
        return parts[1], parts[2], parts[0] == "A"
    return None


def org_of(client_id: str) -> str | None:
    app = app_of(client_id)
    if app is not None:
        return app[0]
    parts = client_id.split(":")
    return parts[1] if len(parts) == 4 and parts[0] in ("d", "g") and all(parts[1:]) else None


# W-TOPICS: the topic space of applications. Each pattern lists its levels; `*` is one non-empty
# level (a literal, or `+` in a filter); `cmd` marks the command topics, `id` the level that is a
# device or application id (where quickstart forbids `+`).
_EVENT = ("iot-2", "type", "*", "id", "*id", "evt", "*", "fmt", "*")
_COMMAND = ("iot-2", "type", "*", "id", "*id", "cmd", "*", "fmt", "*")
_DEVICE_MON = ("iot-2", "type", "*", "id", "*id", "mon")
_APP_MON = ("iot-2", "app", "*id", "mon")
PUBLISHABLE = (_EVENT, _COMMAND)
SUBSCRIBABLE = (_EVENT, _COMMAND, _DEVICE_MON, _APP_MON)


def topic_shape(topic: str, patterns: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], list[str]] | None:
    """The pattern `topic` (a name or a filter with `+`) fits, with its levels; None: outside the space."""
    levels = topic.split("/")
    for pattern in patterns:
        if len(levels) == len(pattern) and all(
            (level != "" and level != "#") if want.startswith("*") else level == want
            for level, want in zip(levels, pattern, strict=True)
        ):
            return pattern, levels
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WatsonPersonality(Personality):
    name = "watson-iot"

    @classmethod
    def account(cls, username: str, password: str, options: dict[str, Any]) -> tuple[str, str]:
        # W-APP-AUTH: the harness's accounts are API keys of the organisation `org`; the token is the password.
        return f"a-{options.get('org', 'org1')}-{username}", password

    @classmethod
    def platform_accounts(cls, options: dict[str, Any]) -> dict[str, tuple[str, str]]:
        # Devices: `use-token-auth` and the device's token (the reference broker's one token for all).
        return {"device": (DEVICE_USER, DEVICE_TOKEN)}

    # -- settings --------------------------------------------------------------------------------

    @property
    def quickstart_org(self) -> str:
        return str(self.options.get("quickstart_org", "quickstart"))

    def _quickstart(self, client: ClientInfo) -> bool:
        return org_of(client.client_id) == self.quickstart_org

    # -- connecting ------------------------------------------------------------------------------

    def check_connect(self, client: ClientInfo) -> Refusal | None:
        org = org_of(client.client_id)
        if org is None:
            return None
        if org == self.quickstart_org:
            # W-QUICKSTART: no TLS, no scalable applications (credentials are not needed: authenticated()).
            if client.transport in SECURE:
                return Refusal(5, 0x87, "quickstart: no TLS")
            app = app_of(client.client_id)
            if app is not None and app[2]:
                return Refusal(2, 0x85, "quickstart: no scalable applications")
            return None
        app = app_of(client.client_id)
        if app is None:
            # Devices of the organisation log in with use-token-auth and their token (the user table
            # checks the token); the broker's devices all belong to `org`.
            device_login = client.username == DEVICE_USER and org == str(self.options.get("org", "org1"))
            if device_of(client.client_id) is not None and not device_login:
                return Refusal(5, 0x87, f"a device of {org} logs in as {DEVICE_USER} with its token")
            return None
        _, app_id, shared = app
        # W-APP-AUTH: the user name is an API key of the ClientId's organisation, `a-orgId-...`.
        if not (client.username or "").startswith(f"a-{org}-"):
            return Refusal(5, 0x87, f"an application of {org} logs in with an API key a-{org}-...")
        if shared:
            # W-SHARED-APP: appId [A-Za-z0-9._-]+; a non-durable subscription: clean session (5.0:
            # clean start and session expiry 0).
            if not APP_ID.fullmatch(app_id):
                return Refusal(2, 0x85, "scalable application id must be [A-Za-z0-9._-]+")
            if not client.clean_start or client.properties.get("session_expiry_interval", 0) != 0:
                return Refusal(2, 0x85, "a scalable application needs a clean session")
        return None

    def authenticated(self, client: ClientInfo) -> bool:
        # W-QUICKSTART: the quickstart service takes devices and applications without credentials.
        return self._quickstart(client)

    def shared_client(self, client: ClientInfo) -> str | None:
        app = app_of(client.client_id)  # W-SHARED-APP: `A:orgId:appId` is held by every instance at once
        return client.client_id if app is not None and app[2] else None

    # -- topics ----------------------------------------------------------------------------------

    def _violation(self, client: ClientInfo, reason: str, invalid_code: int) -> Decision:
        """W-TOPICS: `topic_violation: close` (the document's close codes 276 / 180) or `deny` (SUBACK
        0x80, PUBLISH acknowledged and dropped). 5.0 DISCONNECT: `invalid_code` (0x90 topic name, 0x8F
        filter) for a topic outside the space, 0x87 for one not permitted."""
        if str(self.options.get("topic_violation", "close")) == "close" and self.broker is not None:
            client.extra["closing"] = True  # later filters of the same SUBSCRIBE are refused too
            for connection in list(self.broker.connections.values()):
                if connection.client is client:
                    code = invalid_code if reason.startswith(TOPIC_NOT_VALID) else 0x87
                    connection._close(will=True, code=code, reason=reason)
                    break
        return Decision.DENY

    def _check_topic(self, client: ClientInfo, topic: str, patterns: tuple[tuple[str, ...], ...]) -> str | None:
        """Why an application may not use `topic` (None: it may)."""
        shape = topic_shape(topic, patterns)
        if shape is None:
            return f"{TOPIC_NOT_VALID}: {topic}"
        pattern, levels = shape
        if self._quickstart(client):
            if pattern is _COMMAND:
                return f"{NOT_AUTHORIZED}: quickstart has no commands ({topic})"
            if any(want == "*id" and level == "+" for level, want in zip(levels, pattern, strict=True)):
                return f"{NOT_AUTHORIZED}: quickstart allows no + for a device or application id ({topic})"
        return None

    def authorize_publish(self, client: ClientInfo, topic: str, qos: int, retain: bool) -> Decision:
        decision = self._topic_decision(client, topic, PUBLISHABLE, 0x90)
        return decision if decision is not None else super().authorize_publish(client, topic, qos, retain)

    def authorize_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> Decision:
        decision = self._topic_decision(client, topic_filter, SUBSCRIBABLE, 0x8F)
        return decision if decision is not None else super().authorize_subscribe(client, topic_filter, qos)

    def _topic_decision(self, client: ClientInfo, topic: str, patterns: tuple[tuple[str, ...], ...], code: int) -> Decision | None:
        """The platform's topic rules for a PUBLISH or a SUBSCRIBE (`code`: its 5.0 refusal), or None
        where the account's ACL decides."""
        if client.extra.get("closing"):
            return Decision.DENY
        if app_of(client.client_id) is not None:
            problem = self._check_topic(client, topic, patterns)
            if problem is not None:
                return self._violation(client, problem, code)
        elif device_of(client.client_id) is not None and self._quickstart(client) and "cmd" in topic.split("/"):
            return self._violation(client, f"{NOT_AUTHORIZED}: quickstart has no commands ({topic})", code)
        if self._quickstart(client):
            return Decision.ALLOW  # no accounts, so no ACL: the topic rules above are the whole story
        return None

    # -- monitoring ------------------------------------------------------------------------------

    def _monitor_topic(self, client: ClientInfo) -> str | None:
        device = device_of(client.client_id)
        if device is not None:
            return f"iot-2/type/{device[0]}/id/{device[1]}/mon"
        app = app_of(client.client_id)
        if app is not None:
            return f"iot-2/app/{app[1]}/mon"
        return None

    def _monitor(self, client: ClientInfo, action: str, retain: bool, fields: dict[str, object]) -> None:
        topic = self._monitor_topic(client)
        if topic is None or self.broker is None:
            return
        listener = next((item for item in self.config.listeners if item.transport == client.transport),
                        self.config.listeners[0])
        body: dict[str, object] = {
            "Action": action,
            "Time": _now(),
            "ClientAddr": client.address[0] if client.address else "",
            "ClientID": client.client_id,
            "Port": listener.port,
            "Secure": client.transport in SECURE,
            # The document: "the -ws suffix indicates that it uses websockets"; TLS shows in Secure.
            "Protocol": f"mqtt{client.version}-" + ("ws" if client.transport in ("ws", "wss") else "tcp"),
        }
        if client.username:
            body["User"] = client.username
        body.update(fields)
        # W-MON-DEVICE / W-MON-APP: all monitoring messages are QoS 0.
        self.broker.publish(Message(topic, json.dumps(body).encode(), 0, retain))

    def on_connected(self, client: ClientInfo) -> None:
        client.extra["connect_time"] = _now()
        # Connect is retained for devices and applications alike.
        self._monitor(client, "Connect", True, {"ConnectTime": client.extra["connect_time"]})

    def on_disconnected(self, client: ClientInfo, reason: str) -> None:
        code, text = close_code(reason)
        fields: dict[str, object] = {"ConnectTime": client.extra.get("connect_time", "")}
        if code != NORMAL:  # CloseCode and Reason are left out for a normal close
            fields.update(CloseCode=code, Reason=text)
        traffic = client.traffic
        fields.update(ReadBytes=traffic.get("read_bytes", 0), ReadMsg=traffic.get("read_msgs", 0),
                      WriteBytes=traffic.get("write_bytes", 0), WriteMsg=traffic.get("write_msgs", 0))
        app = app_of(client.client_id)
        if app is None:
            self._monitor(client, "Disconnect", True, fields)  # W-MON-DEVICE: retained for devices
            return
        # W-MON-APP: the application's retained messages (its Connect) are cleared, and its Disconnect
        # is not retained. An instance of a scalable application leaves the others' Connect alone.
        topic = self._monitor_topic(client)
        others = self.broker is not None and any(
            c.client is not None and c.client is not client and c.client.client_id == client.client_id
            for c in self.broker.connections.values())
        if self.broker is not None and topic is not None and not others:
            self.broker.retained.clear(topic)
        self._monitor(client, "Disconnect", False, fields)

    def on_refused(self, client: ClientInfo, refusal: Refusal) -> None:
        # W-MON-DEVICE / W-MON-APP: a failed connect is a non-retained FailedConnect with the close code.
        code, text = FAILED_CONNECT_CODES.get(refusal.code, CLOSED_BY_SERVER)
        self._monitor(client, "FailedConnect", False, {"CloseCode": code, "Reason": text})

    def on_publish(self, client: ClientInfo, message: Message) -> Message | None:
        if not message.retain:
            return message
        # W-NO-RETAIN: the retain flag is overridden to false: delivered live, never stored.
        return Message(message.topic, message.payload, message.qos, False, message.properties, message.origin,
                       message.remaining_expiry())
