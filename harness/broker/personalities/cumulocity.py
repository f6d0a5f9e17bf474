"""Cumulocity IoT (shared seeds/cumulocity-iot-mqtt.txt; ids C8Y-* in harness/spec/vendors.tsv).

Only the behaviours that deviate from the spec are here; the rest is the strict Personality.

The platform side is modelled as far as MQTT can see it, per tenant-wide device identifier:
- SmartREST rows (C8Y-SMARTREST, harness/broker/smartrest.py) published on the device data topics
  `<mode>/us` and `<mode>/us/<childId>` (mode s, t, q or c: the processing modes) are consumed by
  the platform, never routed to MQTT subscribers (nobody may subscribe there: C8Y-NO-SUB-DATA), so a
  retained flag on them has no effect (C8Y-RETAIN-IGNORED). The static templates kept are 100
  (device), 101 (child), 105 and 500 (pending operations: none), 106 (children, answered on `s/ds`),
  110, 200, 301-304 and 400; a child is also created by data sent to `s/us/<childId>`.
- A bad row (unknown template id, malformed CSV, a mandatory value missing) gives one error message
  on `s/e` (C8Y-ERRORS): `<code>,<templateId>,<message>` with code 40 (no such template), 41 (not
  valid CSV) or 42 (a mandatory value missing or not a number); the wording is ours.
- What the platform sends (`s/ds`, `s/e`, `s/dcr`) goes to the device's own connection only, at the
  QoS it subscribed with (C8Y-QOS), never retained; clients may not publish there.
- Device credentials (C8Y-BOOTSTRAP): a device logs in with the static bootstrap user (the harness's
  `bootstrap` account, `management/devicebootstrap` here: `platform_accounts`); an empty message on
  `s/ucr` registers the device identifier; the reference broker stands in for the operator and
  accepts it, so the next empty message gets `70,<tenant>,device_<id>,<bootstrap_password>` on
  `s/dcr`; the broker then accepts those credentials.
- Clean session 0 (C8Y-CLEAN-SESSION, vague): setting `clean_session_0`: `not_kept` (default:
  accepted, the session ends with the connection), `refuse` (CONNACK 5) or `kept` (the spec).
- A device whose managed object is broken (C8Y-CONNACK-LATE): identifiers starting with the setting
  `broken_device_prefix` connect, but their first data on a data topic gets CONNACK 5, then close.
- A will on a data topic (C8Y-WILL) is executed as SmartREST rows when it is published.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness.broker.identifiers import device_identifier
from harness.broker.personality import ClientInfo, Decision, Personality, Refusal
from harness.broker.retained import Message
from harness.broker.smartrest import SmartRestError, format_row, parse_rows
from harness.broker.topics import matches
from harness.wire import Connack

if TYPE_CHECKING:
    from harness.broker.config import Limits

# CONNACK return codes (3.x) and their 5.0 counterparts.
UNACCEPTABLE_VERSION = 1
BAD_CREDENTIALS, BAD_CREDENTIALS_5 = 4, 0x86
NOT_AUTHORIZED, NOT_AUTHORIZED_5 = 5, 0x87

# Processing modes: s persistent, t transient, q quiescent, c CEP (the topic's first level).
MODES = ("s", "t", "q", "c")
# C8Y-NO-SUB-DATA: the topics devices publish data on; a filter that can match one is refused.
DATA_FILTERS = tuple(f"{m}/{kind}" for m in MODES for kind in ("us", "us/+", "uc/+")) + ("s/ucr",)
# Topics the platform publishes on (a device subscribes to them; no client may publish there).
PLATFORM_FILTERS = ("s/e", "s/ds", "s/ds/+", "s/dcr", "s/dc/+", "s/dt")

# C8Y-BOOTSTRAP: the static bootstrap user devices request their credentials with ("enquired from
# product support"), as the reference broker registers it; a harness value, not a secret.
BOOTSTRAP_USER = ("management/devicebootstrap", "bootstrap-secret")

# The platform's records are bounded (the broker may run long): past this many device identifiers
# the oldest record is forgotten, as are registrations and issued credentials past it.
MAX_RECORDS = 10_000

# C8Y-ERRORS codes on s/e (our reading; the document gives no list).
NO_TEMPLATE, BAD_CSV, BAD_VALUE = 40, 41, 42
# Static templates kept: id -> (mandatory values after the id, total values after the id at most).
TEMPLATES: dict[str, tuple[int, int]] = {
    "100": (0, 2), "101": (1, 3), "105": (0, 0), "106": (0, 0), "110": (0, 3), "200": (3, 5),
    "301": (1, 3), "302": (1, 3), "303": (1, 3), "304": (1, 3), "400": (2, 3), "500": (0, 0),
}


def filters_overlap(a: str, b: str) -> bool:
    """Can some topic name match both filters?"""
    la, lb = a.split("/"), b.split("/")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


def data_topic(topic: str) -> str | None:
    """The child a data topic addresses ("" for the device itself), or None if not a data topic."""
    parts = topic.split("/")
    if parts[0] in MODES and len(parts) in (2, 3) and parts[1] == "us" and all(parts):
        return parts[2] if len(parts) == 3 else ""
    return None


def upstream(topic: str) -> bool:
    """A topic devices send to the platform on: data, SmartREST 2.0 templates, credential requests."""
    return data_topic(topic) is not None or topic == "s/ucr" or topic.split("/")[0] in MODES and topic[1:5] == "/uc/"


def _bound(records: dict[str, Any]) -> None:
    while len(records) > MAX_RECORDS:
        del records[next(iter(records))]  # the oldest


@dataclass
class Device:
    """What the platform knows of one device identifier (its managed object, as far as MQTT sees it)."""

    name: str = ""
    type: str = ""
    children: dict[str, None] = field(default_factory=dict)  # child identifiers, in creation order
    events: list[list[str]] = field(default_factory=list)  # rows of 400 (c8y_ConnectionEvent, ...)
    measurements: int = 0
    alarms: int = 0


class CumulocityPersonality(Personality):
    name = "cumulocity"
    clean_session_default = "not_kept"  # C8Y-CLEAN-SESSION when the setting clean_session_0 is absent

    def __init__(self, config: Any, broker: Any = None) -> None:
        super().__init__(config, broker)
        self.clean_session_0 = str(self.options.get("clean_session_0", self.clean_session_default))
        if self.clean_session_0 not in ("not_kept", "refuse", "kept"):
            raise ValueError(f"clean_session_0: {self.clean_session_0!r}: expected not_kept, refuse or kept")
        self.devices: dict[str, Device] = {}  # device and child identifiers (one tenant-wide namespace)
        self.registrations: dict[str, int] = {}  # C8Y-BOOTSTRAP: device identifier -> requests seen
        self.issued: dict[str, str] = {}  # C8Y-BOOTSTRAP: tenant/device_<id> -> password

    @classmethod
    def account(cls, username: str, password: str, options: dict[str, Any]) -> tuple[str, str]:
        # C8Y-AUTH-FORMAT: every user belongs to a tenant and logs in as `tenant/user`.
        return f"{options.get('tenant', 't100')}/{username}", password

    @classmethod
    def platform_accounts(cls, options: dict[str, Any]) -> dict[str, tuple[str, str]]:
        # C8Y-BOOTSTRAP: the bootstrap user, where the platform registers devices (bootstrap_password).
        return {"bootstrap": BOOTSTRAP_USER} if options.get("bootstrap_password") else {}

    def adjust_limits(self, limits: Limits) -> Limits:
        # C8Y-PAYLOAD-MAX (vague: the connection is closed): 16184 bytes, header included.
        return replace(limits, max_packet_size=int(self.options.get("max_packet_size", 16184)))

    def refuse_version(self, version: int) -> Refusal | None:
        # C8Y-VERSION: 3.1 (level 3) and 3.1.1 (level 4) only; 5.0 is unknown to the platform, so
        # the refusal is the 3.1.1 return code 1 (connection.py answers it in 3.1.1 form).
        if version in (3, 4):
            return None
        return Refusal(UNACCEPTABLE_VERSION, UNACCEPTABLE_VERSION, "only MQTT 3.1 and 3.1.1 are supported")

    def before_connect(self, packet_type: int) -> Refusal | None:
        # C8Y-AUTH-FIRST: any packet before a successful CONNECT is answered with CONNACK 5, then close.
        return Refusal(NOT_AUTHORIZED, NOT_AUTHORIZED_5, "CONNECT first")

    def client_key(self, client_id: str, version: int) -> str:
        # C8Y-CLIENTID-FORMAT: X, d:X and d:X:tpl are one device, so they take each other over.
        return device_identifier(client_id)

    def check_connect(self, client: ClientInfo) -> Refusal | None:
        # C8Y-CLIENTID-31: the platform answers 5 where MQTT 3.1 says 2 (identifier rejected).
        if client.version == 3 and len(client.client_id) >= 24:
            return Refusal(NOT_AUTHORIZED, NOT_AUTHORIZED_5, "3.1 ClientId of 24 characters or more")
        # C8Y-AUTH-FORMAT: a user name without its tenant cannot be right: bad credentials.
        if client.username is not None and "/" not in client.username:
            return Refusal(BAD_CREDENTIALS, BAD_CREDENTIALS_5, "user name must be tenant/user")
        # C8Y-AUTH-FORMAT (vague): an empty password is not answered with 4; we read it as 5.
        if client.username is not None and not client.password:
            code = int(self.options.get("empty_password_code", NOT_AUTHORIZED))
            return Refusal(code, NOT_AUTHORIZED_5 if code == NOT_AUTHORIZED else BAD_CREDENTIALS_5, "empty password")
        # C8Y-CLEAN-SESSION (vague): `refuse` reads "requires clean session 1" as CONNACK 5.
        if not client.clean_start and self.clean_session_0 == "refuse":
            return Refusal(NOT_AUTHORIZED, NOT_AUTHORIZED_5, "clean session must be 1")
        return None

    def authenticated(self, client: ClientInfo) -> bool:
        # C8Y-BOOTSTRAP: credentials the platform issued on s/dcr are valid from then on.
        issued = self.issued.get(client.username or "")
        return issued is not None and client.password == issued.encode()

    # -- topics ----------------------------------------------------------------------------------

    def authorize_publish(self, client: ClientInfo, topic: str, qos: int, retain: bool) -> Decision:
        if upstream(topic):
            return Decision.ALLOW  # the platform's own topics: every device may send its data
        if any(matches(f, topic) for f in PLATFORM_FILTERS):
            return Decision.DENY  # only the platform publishes there
        return super().authorize_publish(client, topic, qos, retain)

    def authorize_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> Decision:
        # C8Y-NO-SUB-DATA: no subscription to where devices publish data (MQTT 3.1 has no 0x80: silent).
        if any(filters_overlap(topic_filter, f) for f in DATA_FILTERS):
            return Decision.SILENT if client.version == 3 else Decision.DENY
        if topic_filter in PLATFORM_FILTERS or topic_filter.startswith("s/ds/"):
            return Decision.ALLOW
        return super().authorize_subscribe(client, topic_filter, qos)

    # -- the platform ----------------------------------------------------------------------------

    def _connection(self, client: ClientInfo) -> Any:
        if self.broker is None:
            return None
        connection = self.broker.connections.get(self.client_key(client.client_id, client.version))
        if connection is not None and connection.client is client and connection.session is not None:
            return connection
        return None

    def send_to_device(self, client: ClientInfo, topic: str, row: list[str] | tuple[str, ...]) -> None:
        """A platform message for this device's connection alone: at the QoS of its matching
        subscription (C8Y-QOS), never retained (C8Y-RETAIN-IGNORED); nothing if it has none. Sent
        after the current packet is answered (the platform processes data after acknowledging it)."""
        if self.broker is None:
            return
        payload = format_row(row).encode()

        def deliver() -> None:
            connection = self._connection(client)
            if connection is None:
                return
            granted = [sub.qos for sub in connection.session.subscriptions.values() if matches(sub.topic_filter, topic)]
            if granted:
                connection.session.deliver(Message(topic, payload, max(granted), False), max(granted), False, None)
                self.broker.flush()

        try:
            # call_soon: after the packets already read are answered, before any packet read later.
            asyncio.get_running_loop().call_soon(deliver)
        except RuntimeError:  # no event loop (unit tests driving the broker by hand)
            deliver()

    def error(self, client: ClientInfo, code: int, template: str, text: str) -> None:
        """C8Y-ERRORS: one debug/error message on s/e."""
        self.send_to_device(client, "s/e", (str(code), template, text))

    def on_publish(self, client: ClientInfo, message: Message) -> Message | None:
        topic = message.topic
        child = data_topic(topic)
        if not upstream(topic):
            return message
        device = device_identifier(client.client_id)
        prefix = self.options.get("broken_device_prefix")
        if prefix and device.startswith(str(prefix)):
            # C8Y-CONNACK-LATE: the device's managed object is broken; the platform says so with a
            # CONNACK 5 in the middle of the session and closes.
            connection = self._connection(client)
            if connection is not None:
                connection.send(Connack(reason_code=NOT_AUTHORIZED))
                connection._close(will=True, reason="not authorized: device managed object problem")
            return None
        if topic == "s/ucr":
            self.bootstrap(client, device, message.payload)
        elif child is None:
            # SmartREST 2.0 custom template collections are not modelled: every row is unknown.
            self.error(client, NO_TEMPLATE, "", f"No template collection {topic.split('/', 2)[2]}")
        else:
            self.smartrest(client, device, child, message.payload)
        return None  # consumed by the platform: never routed, never retained

    def bootstrap(self, client: ClientInfo, device: str, payload: bytes) -> None:
        """C8Y-BOOTSTRAP: the first request registers the device (and the stand-in operator accepts
        it); each later one is answered with the device's credentials on s/dcr."""
        if not self.options.get("bootstrap_password"):
            return  # no device registration on this platform
        seen = self.registrations.pop(device, 0)
        self.registrations[device] = seen + 1
        _bound(self.registrations)
        if seen < int(self.options.get("bootstrap_accept_after", 1)):
            return
        tenant = str(self.options.get("tenant", "t100"))
        user = f"device_{device}"
        password = str(self.options["bootstrap_password"])
        self.issued[f"{tenant}/{user}"] = password
        _bound(self.issued)
        self.send_to_device(client, "s/dcr", ("70", tenant, user, password))

    def smartrest(self, client: ClientInfo | None, device: str, child: str, payload: bytes) -> None:
        """C8Y-SMARTREST: each row of a payload sent for `device` (or its `child`), in order; a bad row
        gives its error on s/e (C8Y-ERRORS) and the others are processed all the same."""
        def error(code: int, template: str, text: str) -> None:
            if client is not None:
                self.error(client, code, template, text)

        root = self.record(device)
        target = device
        if child:
            # Automatic device creation: data for an unknown child creates it below the device.
            root.children.setdefault(child, None)
            _bound(root.children)
            target = child
        problem: SmartRestError | None = None
        try:
            rows = parse_rows(payload)
        except UnicodeDecodeError:
            error(BAD_CSV, "", "Payload is not UTF-8")
            return
        except SmartRestError as exc:
            # The rows before the bad one are processed; the CSV cannot be read past it.
            rows, problem = exc.rows, exc
        for row in rows:
            template, values = row[0], row[1:]
            shape = TEMPLATES.get(template)
            if shape is None:
                error(NO_TEMPLATE, template, f"No static template for message id {template}")
                continue
            mandatory, most = shape
            if len(values) < mandatory or any(not v for v in values[:mandatory]) or len(values) > most:
                error(BAD_VALUE, template, f"Expected {mandatory} to {most} values, got {len(values)}")
                continue
            self._apply(client, device, target, template, values, error)
        if problem is not None:
            error(BAD_CSV, problem.template, f"Malformed CSV in row {problem.row}: {problem.message}")

    def record(self, identifier: str) -> Device:
        """The platform's record of a device or child, created on first use (automatic device creation)."""
        found = self.devices.get(identifier)
        if found is None:
            found = self.devices[identifier] = Device()
            _bound(self.devices)
        return found

    def _apply(self, client: ClientInfo | None, device: str, target: str, template: str, values: list[str],
               error: Any) -> None:
        record = self.record(target)
        if template == "100":
            record.name = record.name or (values[0] if values else f"MQTT Device {target}")
            record.type = record.type or (values[1] if len(values) > 1 else "c8y_MQTTDevice")
        elif template == "101":
            record.children.setdefault(values[0], None)
            _bound(record.children)
            child = self.record(values[0])
            child.name = child.name or (values[1] if len(values) > 1 else values[0])
            child.type = child.type or (values[2] if len(values) > 2 else "c8y_MQTTChildDevice")
        elif template == "106":
            if client is not None:
                self.send_to_device(client, "s/ds", ("106", *record.children))
        elif template == "200":
            try:
                float(values[2])
            except ValueError:
                error(BAD_VALUE, template, f"Measurement value is not a number: {values[2]}")
                return
            record.measurements += 1
        elif template in ("301", "302", "303", "304"):
            record.alarms += 1
        elif template == "400":
            record.events.append(values)
        # 105 / 500 (pending operations): there are none; 110 (hardware): nothing to show.

    # -- connection life cycle -------------------------------------------------------------------

    def on_connected(self, client: ClientInfo) -> None:
        connection = self._connection(client)
        if connection is None:
            return
        session = connection.session
        # C8Y-CLEAN-SESSION (vague, default not_kept): accepted, but the session ends with the connection.
        if not client.clean_start and self.clean_session_0 == "not_kept":
            session.expiry = 0
        # C8Y-WILL: a will on a data topic is SmartREST the platform executes when it is published.
        will = session.will
        if will is not None and data_topic(will.topic) is not None:
            client.extra["c8y_will"] = (will.topic, will.payload)

    def on_disconnected(self, client: ClientInfo, reason: str) -> None:
        will = client.extra.pop("c8y_will", None)
        if will is None or reason == "client disconnected":
            return  # a clean DISCONNECT discards the will (MQTT-3.1.2-10)
        topic, payload = will
        self.smartrest(None, device_identifier(client.client_id), data_topic(topic) or "", payload)


class CumulocityLegacyPersonality(CumulocityPersonality):
    """The legacy Cumulocity document (shared seeds/cumulocity-mqtt-legacy.md; ids C8YL-*)."""

    name = "cumulocity-legacy"

    def refuse_version(self, version: int) -> Refusal | None:
        # C8YL-VERSION: MQTT 3.1.1 only; 3.1 and 5.0 get the 3.1.1 return code 1.
        if version == 4:
            return None
        return Refusal(UNACCEPTABLE_VERSION, UNACCEPTABLE_VERSION, "only MQTT 3.1.1 is supported")

    # C8YL-PERSISTENT: clean session 0 works (the spec's session), where the newer document says
    # it is unreliable; the legacy document has no device bootstrap and no mid-session CONNACK.
    clean_session_default = "kept"

    def on_connected(self, client: ClientInfo) -> None:
        super().on_connected(client)
        client.extra.pop("c8y_will", None)
        # C8YL-NO-WILL (vague): the will is accepted at CONNECT and never published.
        connection = self._connection(client)
        if connection is not None:
            connection.session.will = None
