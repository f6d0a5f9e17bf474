"""The personality interface: how the reference broker imitates a platform that narrows or bends the MQTT spec.

The core (connection.py, core.py) implements the specification. At a handful of decision points it
asks the active `Personality` instead of deciding alone; `Personality` itself (registered as
`strict`) answers every question exactly as the spec does, so the strict broker is a conformance
oracle. A vendor personality (see shared VENDORS.md: cumulocity, cloudplugs, itron, watson-iot)
subclasses it and overrides only the hooks where the platform deviates; `harness.broker.personalities`
assembles the registry `PERSONALITIES` (name -> class). Select one with `personality: NAME` in the
config or `--personality NAME`.

The hooks, in the order a connection meets them:

| hook | called | strict answer | example deviation |
| --- | --- | --- | --- |
| `serves(listener)` | first bytes on a connection | True | Itron: only `tls`; CloudPlugs: `tcp` and `tls` (the `transports` setting) |
| `adjust_limits(limits)` | once at start | unchanged | CloudPlugs: maximum_qos 0; Cumulocity: max packet 16184 |
| `refuse_version(version)` | CONNECT of a known version | None (accept) | Cumulocity: 5.0 gets CONNACK 1 |
| `before_connect(packet_type)` | a first packet that is not CONNECT | None: close silently | Cumulocity: CONNACK 5, then close |
| `client_key(client_id, version)` | accepted CONNECT | the ClientId | Cumulocity: `d:X:tpl` and `X` are one client |
| `check_connect(info)` | after the protocol version checks, before the spec's ClientId and credential checks (so it can answer in their place) | None (accept) | ClientId formats, JWT passwords, clean session required, 3.1 long ClientId -> 5 |
| `authenticated(info)` | before the user name / password check | False (the user table decides) | CloudPlugs: empty credentials enrol |
| `shared_client(info)` | accepted CONNECT, before the takeover check | None | Watson `A:org:app`: several connections hold one ClientId, each message to one |
| `takeover(info, existing)` | same key already connected | True: close the old one | False refuses the newcomer (CONNACK 2 / 0x85) |
| `authorize_publish(client, topic, qos, retain)` | every PUBLISH | the ACL | CloudPlugs: SILENT |
| `authorize_subscribe(client, filter, qos)` | every SUBSCRIBE filter | the ACL | Cumulocity: `s/us` refused |
| `max_subscribe_qos(client, filter)` | every allowed SUBSCRIBE filter | 2 | Itron: a role's maximum QoS |
| `on_publish(client, message)` | an allowed PUBLISH | unchanged | Watson: retain forced off; SmartREST replies; None: consumed |
| `on_connected(client)` / `on_disconnected(client, reason)` | after CONNACK / at close | nothing | Watson monitoring topics |
| `on_refused(client, refusal)` | a CONNECT refused with a CONNACK, once its ClientInfo exists | nothing | Watson FailedConnect monitoring |
| `idle_limit` | connection setup | None | CloudPlugs: 300 s regardless of Keep Alive |
| `account(user, password, options)` (classmethod) | by the launcher, before start | unchanged | Cumulocity: `tenant/user`; Itron: JWT password |
| `platform_accounts(options)` (classmethod) | by the launcher, before start | none | Watson: a `device` (`use-token-auth` and a device token); Cumulocity: the `bootstrap` user |

Vendor personalities live in `personalities/<platform>.py`, one module each, and import only this
interface and the broker's leaf modules (retained, topics, smartrest, identifiers, wire); a new platform is one
new module and one line in `personalities/__init__.py`.
Their settings come from `personality_options` in the broker config (the launcher passes the target's
profile `settings`, targets.yaml overrides included), read through `self.options`.

`client` is the `ClientInfo` below. `broker` (the `core.Broker`, given at construction) is how a
personality acts on its own: `broker.publish(Message(...))` emits a message the platform itself
sends (monitoring topics, SmartREST replies on `s/e`), `broker.retained` is the retained store,
`broker.connections[key]` the live connections (`.send(Connack(...))` then `._close(...)` for a late
refusal). A message handed back by `on_publish` must be a new `Message` if anything changed: the
broker caches encoded bytes on the message object.

Capabilities a profile declares (maximum QoS, retain available, maximum packet size, ...) are
`limits` changes in `adjust_limits`, so CONNACK properties and enforcement follow automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: this module imports nothing of the broker's, so every layer may import it
    from harness.broker.auth import ClientAcl
    from harness.broker.config import BrokerConfig, Limits
    from harness.broker.retained import Message


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"  # the spec's refusal: SUBACK 0x80/0x87; PUBLISH per `denied_publish`
    SILENT = "silent"  # acknowledged as if allowed, then dropped / never delivered


@dataclass
class ClientInfo:
    """What a personality may know about a connection."""

    client_id: str
    version: int  # protocol level: 3, 4 or 5
    username: str | None = None
    password: bytes | None = None
    clean_start: bool = True
    keep_alive: int = 0
    address: tuple[str, int] | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # CONNECT properties (5.0)
    will_topic: str | None = None
    acl: ClientAcl | None = None
    transport: str = "tcp"  # the listener's: tcp, tls, ws or wss
    # Filled when the connection closes: read_bytes / write_bytes (MQTT bytes from / to the client)
    # and read_msgs / write_msgs (PUBLISH packets from / to the client).
    traffic: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # personality-private state


@dataclass(frozen=True)
class Refusal:
    """Refuse a CONNECT: `code` is the 3.x return code and `code5` the 5.0 reason code."""

    code: int
    code5: int
    reason: str = ""


class Personality:
    """The spec as written (registered as `strict`)."""

    name = "strict"
    idle_limit: float | None = None  # seconds without traffic before closing, whatever Keep Alive says

    def __init__(self, config: BrokerConfig, broker: Any = None) -> None:
        self.config = config
        self.broker = broker

    @property
    def options(self) -> dict[str, Any]:
        """`personality_options` of the config: this platform's settings (targets.yaml `settings` reach it)."""
        return self.config.personality_options

    @classmethod
    def account(cls, username: str, password: str, options: dict[str, Any]) -> tuple[str, str]:
        """The credentials a harness account has on this platform (the launcher registers these and
        scenarios connect with them): Cumulocity wants `tenant/user`, Itron a JWT as password."""
        return username, password

    @classmethod
    def platform_accounts(cls, options: dict[str, Any]) -> dict[str, tuple[str, str]]:
        """Accounts of the platform's own kinds besides the standard ones, by name -> (user name,
        password), as scenarios name them (`account: device`, `${user:enrollment}`): the launcher
        registers them (ACL `#`) and hands them to the run, where a user's targets entry gives its own."""
        return {}

    def adjust_limits(self, limits: Limits) -> Limits:
        return limits

    def serves(self, listener: str) -> bool:
        """Whether a connection on a listener of this transport (tcp, tls, ws, wss) is served at all;
        False closes it on its first bytes, without a CONNACK."""
        return True

    def refuse_version(self, version: int) -> Refusal | None:
        return None

    def before_connect(self, packet_type: int) -> Refusal | None:
        """A first packet other than CONNECT: None closes without a word (MQTT-3.1.4-1)."""
        return None

    def client_key(self, client_id: str, version: int) -> str:
        return client_id

    def check_connect(self, client: ClientInfo) -> Refusal | None:
        return None

    def authenticated(self, client: ClientInfo) -> bool:
        """True: the platform accepts these credentials itself, in place of the user table."""
        return False

    def shared_client(self, client: ClientInfo) -> str | None:
        """A group name if several connections may hold this ClientId at once (None: the spec's one
        connection per ClientId). Each such connection gets a session of its own and is never taken
        over; its subscriptions join a share group of that name, so each message matching them goes
        to one member, as for `$share/`. Such a personality should insist on a clean session in
        `check_connect`: a session of its own cannot be resumed by a later connection."""
        return None

    def takeover(self, client: ClientInfo, existing: ClientInfo) -> bool:
        return True  # MQTT-3.1.4-2 / 5.0 MQTT-3.1.4-3

    def authorize_publish(self, client: ClientInfo, topic: str, qos: int, retain: bool) -> Decision:
        if client.acl is None or client.acl.can_publish(topic):
            return Decision.ALLOW
        return Decision.DENY

    def authorize_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> Decision:
        if client.acl is None or client.acl.can_subscribe(topic_filter):
            return Decision.ALLOW
        # MQTT 3.1 has no SUBACK failure code: the subscription is acknowledged, nothing delivered.
        return Decision.SILENT if client.version == 3 else Decision.DENY

    def max_subscribe_qos(self, client: ClientInfo, topic_filter: str) -> int:
        """The highest QoS an allowed subscription is granted (besides the broker's maximum_qos)."""
        return 2

    def on_publish(self, client: ClientInfo, message: Message) -> Message | None:
        return message

    def on_connected(self, client: ClientInfo) -> None:
        return None

    def on_disconnected(self, client: ClientInfo, reason: str) -> None:
        return None

    def on_refused(self, client: ClientInfo, refusal: Refusal) -> None:
        """A CONNECT refused (by the spec's checks or the personality's), before its CONNACK goes out."""
        return None
