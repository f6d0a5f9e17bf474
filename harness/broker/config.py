"""Broker configuration: the YAML file, command-line overrides, and validation with one-line errors.

A bad file is reported as `ConfigError("FILE:LINE: field.path: problem")`; `__main__` prints that
line and exits 2, never a traceback. Every section is optional: an empty file gives an anonymous,
unrestricted broker on 127.0.0.1:1883 with the spec's own limits. The full format (defaults shown):

    listeners: [{host: 127.0.0.1, port: 1883, transport: tcp}]   # port 0: any free port
      # transport tcp, tls, ws or wss; tls/wss: certfile, keyfile (PEM); cafile + require_client_cert
      # for client certificates; client_id_from_cn: true (Cumulocity); ws/wss: path (default /mqtt)
    personality: strict                    # personalities.PERSONALITIES
    personality_options: {}                # that personality's own settings (harness/broker/personality.py)
    auth:
      allow_anonymous: true
      users: {}                            # name: password
      allow_zero_length_client_id: true    # 3.1.1 / 5.0 (3.1 never allows it)
      methods: [HMAC-SHA256]               # 5.0 enhanced authentication offered
    acl:                                   # absent: everything allowed; present: default deny
      - {user: NAME or "*", allow: [{topic: "pattern with %c %u", access: read|write|readwrite}]}
    limits:
      max_connections: 10000
      max_packet_size: 268435460           # both ways: announced to 5.0 clients when smaller
      maximum_qos: 2
      retain_available: true
      wildcard_subscription_available: true   # 5.0: false announces 0 and refuses + and # filters
      subscription_identifier_available: true # 5.0: false announces 0 and refuses identifiers
      shared_subscription_available: true     # 5.0: false announces 0 and refuses $share/ filters
      max_client_id_length: 65535
      protocols: ["3.1", "3.1.1", "5.0"]   # the versions accepted; others get CONNACK 1 (0x84 in 5.0)
      max_inflight: 20                     # outgoing QoS 1/2 unacknowledged, per client
      max_queued_messages: 1000            # per session, beyond the in-flight window
      receive_maximum: 65535               # incoming QoS 2 awaiting PUBREL (5.0 CONNACK)
      topic_alias_maximum: 10              # aliases a 5.0 client may send
      server_keep_alive: null              # 5.0: impose this Keep Alive
      max_subscriptions_per_client: 10000
      max_retained_messages: 100000
      max_sessions: 100000
      connect_timeout: 10.0                # seconds from accept to a complete CONNECT
      write_buffer_high: 1048576           # bytes buffered for a client before backpressure
    denied_publish: ack_and_drop           # or disconnect
    response_information: null             # 5.0: prefix returned when a client requests it
    log_level: INFO
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.broker.auth import ENHANCED_METHODS
from harness.broker.personalities import PERSONALITIES
from harness.broker.topics import filter_problem
from harness.scenarios.yamlfile import line_of, load_yaml
from harness.wire import Version

# Largest packet MQTT can frame: remaining length 268,435,455 plus a 5-byte fixed header.
SPEC_MAX_PACKET_SIZE = 268_435_460
TRANSPORTS = ("tcp", "tls", "ws", "wss")  # server.py picks the listener by this name (transports.py: all but tcp)


class ConfigError(Exception):
    """One line naming the file (and line), the field, and what is wrong with it."""


@dataclass
class ListenerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    transport: str = "tcp"
    # tls and wss: the server certificate (PEM), and for client certificates the CA that signs them.
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    require_client_cert: bool = False
    client_id_from_cn: bool = False  # Cumulocity: the certificate authenticates; its CN is the device id
    path: str = "/mqtt"  # ws and wss: the HTTP path of the upgrade ("" accepts any)


@dataclass
class AclEntry:
    """Topic patterns one user (or `*`: every client, anonymous included) may use."""

    user: str
    allow: list[tuple[str, str]]  # (pattern, "read" | "write" | "readwrite")


@dataclass
class AuthConfig:
    allow_anonymous: bool = True
    users: dict[str, str] = field(default_factory=dict)
    # 3.1.1/5.0 let a server accept an empty ClientId and assign one (MQTT-3.1.3-6); 3.1 never does.
    allow_zero_length_client_id: bool = True
    # Enhanced authentication (5.0 AUTH) methods offered; names from auth.ENHANCED_METHODS.
    methods: list[str] = field(default_factory=lambda: ["HMAC-SHA256"])


@dataclass
class Limits:
    max_connections: int = 10_000
    max_packet_size: int = SPEC_MAX_PACKET_SIZE
    maximum_qos: int = 2
    retain_available: bool = True
    # 5.0 optional features; when false CONNACK says so and a SUBSCRIBE using one is a Protocol Error
    # (DISCONNECT 0xA2 / 0xA1 / 0x9E, 5.0 §3.2.2.3.11-13).
    wildcard_subscription_available: bool = True
    subscription_identifier_available: bool = True
    shared_subscription_available: bool = True
    max_client_id_length: int = 65_535
    # The protocol levels accepted (3, 4, 5); another gets CONNACK 1 (0x84 in 5.0) and the close.
    protocols: tuple[int, ...] = (3, 4, 5)
    max_inflight: int = 20  # outgoing QoS 1/2 messages awaiting acknowledgement, per client
    max_queued_messages: int = 1000  # further messages held per session (offline or window full)
    receive_maximum: int = 65_535  # incoming QoS 2 awaiting PUBREL (5.0 CONNACK Receive Maximum)
    topic_alias_maximum: int = 10  # aliases a 5.0 client may use towards the broker
    server_keep_alive: int | None = None  # 5.0: override the client's Keep Alive
    # Beyond the list, so that no client can grow the broker without bound:
    max_subscriptions_per_client: int = 10_000
    max_retained_messages: int = 100_000
    max_sessions: int = 100_000  # stored sessions, connected or not
    connect_timeout: float = 10.0  # seconds from TCP accept to a complete CONNECT
    write_buffer_high: int = 1 << 20  # bytes queued in the kernel-side writer before backpressure


@dataclass
class BrokerConfig:
    listeners: list[ListenerConfig] = field(default_factory=lambda: [ListenerConfig()])
    personality: str = "strict"
    # Settings of the active personality (its own keys, e.g. an Itron JWT secret); see harness/broker/personality.py.
    personality_options: dict[str, Any] = field(default_factory=dict)
    auth: AuthConfig = field(default_factory=AuthConfig)
    acl: list[AclEntry] | None = None  # None: no ACL, everything allowed
    limits: Limits = field(default_factory=Limits)
    denied_publish: Literal["ack_and_drop", "disconnect"] = "ack_and_drop"
    # 5.0 Response Information prefix sent when a client requests it (None: never sent).
    response_information: str | None = None
    log_level: str = "INFO"
    source: str = "<defaults>"


class _Reader:
    """Checks one section of the YAML tree, naming file, line and dotted field in every error."""

    def __init__(self, source: str, root: Any) -> None:
        self.source = source
        self.root = root

    def fail(self, path: list[str | int], problem: str) -> ConfigError:
        line = line_of(self.root, path) if path else getattr(self.root, "line", None)
        where = f"{self.source}:{line}" if line else self.source
        dotted = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        return ConfigError(f"{where}: {dotted or 'top level'}: {problem}")

    def mapping(self, value: Any, path: list[str | int], allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail([*path, str(key)], f"unknown field (known: {', '.join(sorted(allowed))})")
        return value

    def integer(self, value: Any, path: list[str | int], low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise self.fail(path, f"{value} is out of range ({bound})")
        return value

    def number(self, value: Any, path: list[str | int], low: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.fail(path, f"expected a number >= {low}, got {value!r}")
        return float(value)

    def boolean(self, value: Any, path: list[str | int]) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def string(self, value: Any, path: list[str | int]) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # a numeric password in YAML is still a password
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {value!r}")
        return value


def parse_listen(text: str) -> ListenerConfig:
    """`host:port`, `[v6]:port` or `tcp://host:port` (the scheme is the transport)."""
    transport = "tcp"
    if "://" in text:
        transport, text = text.split("://", 1)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen {text!r}: expected HOST:PORT")
    if transport not in TRANSPORTS:
        raise ConfigError(f"--listen {text!r}: transport {transport!r} is not supported (known: {', '.join(TRANSPORTS)})")
    return ListenerConfig(host=host.strip("[]") or "0.0.0.0", port=int(port), transport=transport)


def load_config(path: str | Path | None) -> BrokerConfig:
    if path is None:
        return BrokerConfig()
    source = str(path)
    try:
        root = load_yaml(Path(path))
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    return config_from_mapping(root, source)


def config_from_mapping(root: Any, source: str = "<config>") -> BrokerConfig:
    r = _Reader(source, root)
    top = r.mapping(
        root,
        [],
        {"listeners", "personality", "personality_options", "auth", "acl", "limits", "denied_publish", "response_information", "log_level"},
    )
    config = BrokerConfig(source=source)

    if "listeners" in top:
        raw = top["listeners"]
        if not isinstance(raw, list) or not raw:
            raise r.fail(["listeners"], "expected a non-empty list of {host, port, transport}")
        config.listeners = []
        for i, item in enumerate(raw):
            p: list[str | int] = ["listeners", i]
            m = r.mapping(item, p, {"host", "port", "transport", "certfile", "keyfile", "cafile", "require_client_cert",
                                    "client_id_from_cn", "path"})
            transport = r.string(m.get("transport", "tcp"), [*p, "transport"])
            if transport not in TRANSPORTS:
                raise r.fail([*p, "transport"], f"{transport!r} is not supported (known: {', '.join(TRANSPORTS)})")
            listener = ListenerConfig(
                host=r.string(m.get("host", "127.0.0.1"), [*p, "host"]),
                port=r.integer(m.get("port", 1883), [*p, "port"], 0, 65535),
                transport=transport,
                path=r.string(m.get("path", "/mqtt"), [*p, "path"]),
                require_client_cert=r.boolean(m.get("require_client_cert", False), [*p, "require_client_cert"]),
                client_id_from_cn=r.boolean(m.get("client_id_from_cn", False), [*p, "client_id_from_cn"]),
            )
            for key in ("certfile", "keyfile", "cafile"):
                if m.get(key) is not None:
                    value = r.string(m[key], [*p, key])
                    if not Path(value).is_file():
                        raise r.fail([*p, key], f"file {value} not found")
                    setattr(listener, key, value)
            if transport in ("tls", "wss") and not (listener.certfile and listener.keyfile):
                raise r.fail(p, f"a {transport} listener needs certfile and keyfile")
            if listener.require_client_cert and not listener.cafile:
                raise r.fail([*p, "require_client_cert"], "needs cafile (the CA that signs client certificates)")
            config.listeners.append(listener)

    if "personality" in top:
        config.personality = r.string(top["personality"], ["personality"])
        if config.personality not in PERSONALITIES:
            known = ", ".join(sorted(PERSONALITIES))
            raise r.fail(["personality"], f"unknown personality {config.personality!r} (known: {known})")

    if "personality_options" in top:
        raw_options = top["personality_options"]
        known_keys = set(raw_options) if isinstance(raw_options, dict) else set()  # each personality checks its own
        config.personality_options = dict(r.mapping(raw_options, ["personality_options"], known_keys))

    if "auth" in top:
        m = r.mapping(top["auth"], ["auth"], {"allow_anonymous", "users", "allow_zero_length_client_id", "methods"})
        a = config.auth
        if "allow_anonymous" in m:
            a.allow_anonymous = r.boolean(m["allow_anonymous"], ["auth", "allow_anonymous"])
        if "allow_zero_length_client_id" in m:
            a.allow_zero_length_client_id = r.boolean(
                m["allow_zero_length_client_id"], ["auth", "allow_zero_length_client_id"]
            )
        users = m.get("users") or {}
        if not isinstance(users, dict):
            raise r.fail(["auth", "users"], "expected a mapping of user name to password")
        a.users = {
            r.string(k, ["auth", "users"]): r.string(v, ["auth", "users", str(k)]) for k, v in users.items()
        }
        if "methods" in m:
            methods = m["methods"] or []
            if not isinstance(methods, list):
                raise r.fail(["auth", "methods"], "expected a list of method names")
            for i, name in enumerate(methods):
                if name not in ENHANCED_METHODS:
                    known = ", ".join(sorted(ENHANCED_METHODS))
                    raise r.fail(["auth", "methods", i], f"unknown method {name!r} (known: {known})")
            a.methods = list(methods)

    if "acl" in top and top["acl"] is not None:
        raw = top["acl"]
        if not isinstance(raw, list):
            raise r.fail(["acl"], "expected a list of {user, allow: [{topic, access}]}")
        config.acl = []
        for i, item in enumerate(raw):
            p = ["acl", i]
            m = r.mapping(item, p, {"user", "allow"})
            if "user" not in m:
                raise r.fail(p, "missing field 'user' (a user name, or '*' for every client)")
            user = r.string(m["user"], [*p, "user"])
            allow = m.get("allow") or []
            if not isinstance(allow, list):
                raise r.fail([*p, "allow"], "expected a list of {topic, access}")
            rules = []
            for j, rule in enumerate(allow):
                q = [*p, "allow", j]
                rm = r.mapping(rule, q, {"topic", "access"})
                if "topic" not in rm:
                    raise r.fail(q, "missing field 'topic'")
                topic = r.string(rm["topic"], [*q, "topic"])
                access = r.string(rm.get("access", "readwrite"), [*q, "access"])
                if access not in ("read", "write", "readwrite"):
                    raise r.fail([*q, "access"], f"{access!r}: expected read, write or readwrite")
                problem = filter_problem(topic.replace("%c", "c").replace("%u", "u"))
                if problem:
                    raise r.fail([*q, "topic"], f"{topic!r} is not a valid topic filter: {problem}")
                rules.append((topic, access))
            config.acl.append(AclEntry(user=user, allow=rules))

    if "limits" in top:
        names = {f.name for f in fields(Limits)}
        m = r.mapping(top["limits"], ["limits"], names)
        lim = config.limits
        ints: dict[str, tuple[int, int | None]] = {
            "max_connections": (1, None),
            "max_packet_size": (16, SPEC_MAX_PACKET_SIZE),
            "maximum_qos": (0, 2),
            "max_client_id_length": (1, 65535),
            "max_inflight": (1, 65535),
            "max_queued_messages": (0, None),
            "receive_maximum": (1, 65535),
            "topic_alias_maximum": (0, 65535),
            "max_subscriptions_per_client": (1, None),
            "max_retained_messages": (0, None),
            "max_sessions": (1, None),
            "write_buffer_high": (4096, None),
        }
        for key, value in m.items():
            path: list[str | int] = ["limits", key]
            if key in ints:
                low, high = ints[key]
                setattr(lim, key, r.integer(value, path, low, high))
            elif key in ("retain_available", "wildcard_subscription_available", "subscription_identifier_available",
                         "shared_subscription_available"):
                setattr(lim, key, r.boolean(value, path))
            elif key == "protocols":
                if not isinstance(value, list) or not value:
                    raise r.fail(path, f"{value!r}: expected a list of versions, e.g. [\"3.1.1\", \"5.0\"]")
                try:
                    lim.protocols = tuple(sorted({int(Version.parse(str(v))) for v in value}))
                except ValueError as exc:
                    raise r.fail(path, str(exc)) from None
            elif key == "server_keep_alive":
                lim.server_keep_alive = None if value is None else r.integer(value, path, 0, 65535)
            elif key == "connect_timeout":
                lim.connect_timeout = r.number(value, path, 0.01)

    if "denied_publish" in top:
        value = top["denied_publish"]
        if value not in ("ack_and_drop", "disconnect"):
            raise r.fail(["denied_publish"], f"{value!r}: expected ack_and_drop or disconnect")
        config.denied_publish = value

    if "response_information" in top and top["response_information"] is not None:
        config.response_information = r.string(top["response_information"], ["response_information"])

    if "log_level" in top:
        level = r.string(top["log_level"], ["log_level"]).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise r.fail(["log_level"], f"{level!r}: expected debug, info, warning or error")
        config.log_level = level
    return config
