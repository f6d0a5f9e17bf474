"""Scenario files: loading, validation against the JSON Schema, and the typed model the runner executes.

A file is checked completely when it is collected — YAML syntax, the schema, packet type and field
names, protocol version, duplicate ids — so a typo fails collection of that file with its line,
never halfway through a run.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness import spec
from harness.errors import ScenarioFileError
from harness.scenarios import cache as scenario_cache
from harness.scenarios.values import references
from harness.scenarios.yamlfile import LineDict, line_of, load_yaml
from harness.spec import vendors
from harness.wire import PACKET_CLASSES, Version

SCHEMA_PATH = Path(__file__).with_name("schema.json")
DEFAULT_CONNECTION = "main"

# Keys a step may carry besides the packet's own fields.
# frames: split the bytes over several transport writes (WebSocket frames); hold: send them together
# with the next send in one write; ws_opcode: the WebSocket frame type (text, on purpose).
FRAMING_OPTIONS = {"frames", "hold", "ws_opcode"}
SEND_OPTIONS = {"on", "packet", "flags", "remaining_length", "truncate", "trailing", "body"} | FRAMING_OPTIONS
EXPECT_OPTIONS = {"on", "packet", "timeout", "save", "allow_findings", "flags", "may_send", "or_close"}
CONNECT_OPTIONS = {"on", "account"} | FRAMING_OPTIONS
CLIENT_KINDS = ("raw", "paho")


@cache
def scenario_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Step:
    kind: str  # open, connect, connected, send, send_raw, expect, expect_close, expect_nothing, wait, disconnect, close
    on: str
    args: dict[str, Any]
    line: int

    def summary(self) -> str:
        shown = {k: v for k, v in self.args.items() if k != "on"}
        return f"{self.kind} on {self.on}" + (f": {_compact(shown)}" if shown else "")


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    refs: tuple[str, ...]
    protocol: Version
    area: str
    requires: tuple[str, ...]
    steps: tuple[Step, ...]
    path: Path
    line: int
    description: str = ""
    connections: tuple[str, ...] = field(default=())
    # The transports (tcp, tls, ws, wss) the scenario is about; empty: it runs over any.
    transports: tuple[str, ...] = ()
    # The client kinds it runs with, one test item each: raw (the default) and/or paho.
    clients: tuple[str, ...] = ("raw",)
    # Why it needs the broker to itself, as the file says (`alone:`); harness.scenarios.sharing finds the rest.
    alone: str = ""

    @property
    def rests_on_absence(self) -> bool:
        """Whether a pass may rest on the broker closing, refusing a TLS handshake or accepting a close in
        place of a packet: a broker that closes everything would pass such a scenario, so the plugin then
        checks the broker is still alive (harness.liveness). `expect_nothing` needs a PINGRESP: it is not one."""
        return any(s.kind in ("expect_close", "expect_tls_failure") or (s.kind == "expect" and s.args.get("or_close"))
                   for s in self.steps)

    @property
    def uses_timer(self) -> bool:
        """Whether the scenario waits on a protocol timer, so its duration is the timer's, not the network's.

        A step that sets its own `timeout` is waiting for something the specification times (a will
        delay, an expiry), so it counts, as do `wait` and the keepalive forms of `expect_close`.
        """
        return any(
            s.kind == "wait"
            or (s.kind == "expect_close" and {"not_before", "keepalive", "idle_setting", "timeout"} & set(s.args))
            or (s.kind == "expect" and "timeout" in s.args)
            for s in self.steps
        )


    @property
    def uses(self) -> dict[str, int]:
        """The optional 5.0 features the steps use, each with the first step line that does:
        `qos1`, `qos2`, `retain`, `wildcard_subscriptions`, `shared_subscriptions`,
        `subscription_identifiers`, `topic_alias`. A broker that announces in CONNACK that it lacks
        one skips the scenario (harness.targets). A feature the scenario `requires` absent
        (`no_retain`, ...) is what it is about, so it is not counted."""
        found: dict[str, int] = {}
        for step in self.steps:
            for feature in _features(step):
                found.setdefault(feature, step.line)
        return {feature: line for feature, line in found.items() if f"no_{feature}" not in self.requires}

    @property
    def accounts(self) -> dict[str, "AccountUse"]:
        """The target accounts the steps use, by name: those a CONNECT logs in with (`account:`,
        `default` when a connecting step names none) and those whose `${user}` / `${password}` a step
        writes itself, each with the first step line that does (harness.targets skips a scenario
        whose accounts the target has not got, or has only anonymously)."""
        found: dict[str, AccountUse] = {}
        for step in self.steps:
            if step.kind in CONNECTING_STEPS or (step.kind == "send" and str(step.args.get("packet")).lower() == "connect"):
                name = step.args.get("account", "default")
                if name not in (None, "none"):
                    found.setdefault(str(name), AccountUse(step.line))
            for variable, arg in references(step.args):
                if variable in ("user", "password"):
                    name = arg or "default"
                    use = found.get(name)
                    if use is None or use.credentials_line is None:
                        found[name] = AccountUse(use.line if use else step.line, step.line)
        return found


@dataclass(frozen=True)
class AccountUse:
    """How a scenario uses one account: first at `line`; its user name or password written into a step
    (`${user}`, `${password:restricted}`) first at `credentials_line`, None if never."""

    line: int
    credentials_line: int | None = None


# Steps that send a CONNECT with the account's credentials (the runner's _connect_packet).
CONNECTING_STEPS = ("connect", "connected", "expect_tls_failure")


# The optional features a 5.0 broker may announce in CONNACK that it lacks, named as the capabilities
# scenarios `require` (harness.targets reads the CONNACK; Scenario.uses finds them in the steps).
ANNOUNCED_FEATURES = ("qos1", "qos2", "retain", "wildcard_subscriptions", "shared_subscriptions",
                      "subscription_identifiers", "topic_alias")


def _features(step: Step) -> set[str]:
    """The optional features one step uses by what it sends (literal values only: `${...}` is not guessed)."""
    args, found = step.args, set()

    def qos(value: Any) -> None:
        if value == 1 or value == 2:
            found.add(f"qos{value}")

    if step.kind in ("connect", "connected") or (step.kind == "send" and str(args.get("packet")).lower() == "connect"):
        will = args.get("will")
        if isinstance(will, dict):
            qos(will.get("qos"))
            if will.get("retain") is True:
                found.add("retain")
    if step.kind != "send":
        return found
    packet = str(args.get("packet", "")).lower()
    properties = args.get("properties")
    names = {str(p[0]) for p in properties if isinstance(p, list | tuple) and p} if isinstance(properties, list) \
        else set(properties) if isinstance(properties, dict) else set()
    if packet == "publish":
        qos(args.get("qos"))
        if args.get("retain") is True:
            found.add("retain")
        if "topic_alias" in names:
            found.add("topic_alias")
    elif packet in ("pubrec", "pubrel", "pubcomp"):
        found.add("qos2")
    elif packet == "subscribe":
        if "subscription_identifier" in names:
            found.add("subscription_identifiers")
        for item in args.get("subscriptions") or []:
            topic_filter = item.get("topic_filter") if isinstance(item, dict) else item
            if isinstance(item, dict):
                qos(item.get("qos"))
            if not isinstance(topic_filter, str):
                continue
            if topic_filter.startswith("$share/"):
                found.add("shared_subscriptions")
                topic_filter = topic_filter.split("/", 2)[-1]
            if "+" in topic_filter or "#" in topic_filter:
                found.add("wildcard_subscriptions")
    return found


def _compact(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.hex(" ") if isinstance(v, bytes) else str(v), separators=(",", ":"))


def load_scenarios(path: Path, display_path: str | None = None) -> list[Scenario]:
    """Every scenario of one file, or ScenarioFileError naming the file, line and problem.

    From the cache of parsed files (harness.scenarios.cache) when this file's bytes were parsed before."""
    shown = display_path or str(path)
    cached, content = scenario_cache.lookup(path, shown)
    if cached is not None:
        return list(cached)
    scenarios = _parse_scenarios(path, shown, content)
    if content is not None:
        scenario_cache.store(path, shown, content, scenarios)
    return scenarios


def _parse_scenarios(path: Path, shown: str, content: bytes | None) -> list[Scenario]:
    try:
        # The bytes the cache key was taken from, so an entry always holds what its key says.
        document = load_yaml(path, None if content is None else content.decode("utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ScenarioFileError(shown, line, f"YAML syntax: {problem}") from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(shown, None, f"cannot read: {exc}") from None

    errors = sorted(
        jsonschema.Draft202012Validator(scenario_schema()).iter_errors(document),
        key=lambda error: (len(error.absolute_path), list(map(str, error.absolute_path))),
    )
    if errors:
        error = _most_specific(errors)
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ScenarioFileError(shown, line_of(document, list(error.absolute_path)), f"{where}: {_schema_message(error)}")

    defaults = document.get("defaults") or {}
    scenarios: list[Scenario] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document["scenarios"]):
        line = line_of(document, ["scenarios", index]) or 0
        scenario_id = raw["id"]
        if scenario_id in seen:
            raise ScenarioFileError(shown, line, f"duplicate scenario id {scenario_id!r} (first at line {seen[scenario_id]})")
        seen[scenario_id] = line
        protocol_text = raw.get("protocol", defaults.get("protocol"))
        if protocol_text is None:
            raise ScenarioFileError(shown, line, f"scenario {scenario_id!r}: no protocol (set it or defaults.protocol)")
        protocol = Version.parse(str(protocol_text))
        refs = tuple(raw["refs"]) + tuple(r for r in defaults.get("refs", []) if r not in raw["refs"])
        unknown = [ref for ref in refs if spec.is_protocol_ref(ref) and spec.lookup(protocol, ref) is None]
        if unknown:
            raise ScenarioFileError(
                shown, line_of(document, ["scenarios", index, "refs"]) or line,
                f"scenario {scenario_id!r}: {', '.join(unknown)} is not a statement of MQTT {protocol.label}",
            )
        unknown = [ref for ref in refs if vendors.is_vendor_ref(ref) and vendors.lookup(ref) is None]
        if unknown:  # a vendor id must be one of harness/spec/vendors.tsv (shared VENDORS.md)
            raise ScenarioFileError(
                shown, line_of(document, ["scenarios", index, "refs"]) or line,
                f"scenario {scenario_id!r}: {', '.join(unknown)} is not a vendor behaviour id (harness/spec/vendors.tsv)",
            )
        steps = tuple(_parse_step(shown, raw["steps"], i) for i in range(len(raw["steps"])))
        _check_kinds(shown, scenario_id, raw, defaults, steps, line, protocol)
        scenarios.append(
            Scenario(
                id=scenario_id,
                title=raw["title"],
                refs=refs,
                protocol=protocol,
                area=raw.get("area", defaults.get("area", "general")),
                requires=tuple(raw.get("requires", defaults.get("requires", []))),
                steps=steps,
                path=path,
                line=line,
                description=raw.get("description", ""),
                connections=tuple(dict.fromkeys(step.on for step in steps)),
                transports=tuple(raw.get("transports", defaults.get("transports", []))),
                clients=tuple(raw.get("clients", defaults.get("clients", ["raw"]))),
                alone=raw.get("alone", ""),
            )
        )
    return scenarios


def _check_kinds(shown: str, scenario_id: str, raw: Any, defaults: Any, steps: tuple[Step, ...], line: int,
                 protocol: Version) -> None:
    """A scenario that declares the paho kind must not need the raw client; WebSocket framing needs ws/wss."""
    if "paho" in raw.get("clients", defaults.get("clients", [])):
        from harness.clients.paho import scenario_raw_only

        reason = scenario_raw_only(steps, protocol)
        if reason:
            raise ScenarioFileError(shown, line, f"scenario {scenario_id!r} declares clients [paho], but needs the raw "
                                    f"client at {reason}")
    transports = set(raw.get("transports", defaults.get("transports", [])))
    for step in steps:
        text_frames = step.args.get("ws_opcode", "binary") != "binary"
        if text_frames and (not transports or transports - {"ws", "wss"}):
            raise ScenarioFileError(shown, step.line or line, f"scenario {scenario_id!r}: ws_opcode needs "
                                    "`transports: [ws, wss]` (WebSocket frames exist only there)")


def _most_specific(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    # For oneOf failures the deepest sub-error usually says what is wrong in words a user knows.
    best = jsonschema.exceptions.best_match(errors)
    return best if best is not None else errors[-1]


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties" and error.schema_path and "step" in str(list(error.schema_path)):
        return error.message + " (a step is one of: open, connect, connected, send, send_raw, expect, expect_close, expect_nothing, wait, disconnect, close, expect_tls_failure, expect_websocket)"
    if error.validator in ("minProperties", "maxProperties") and isinstance(error.instance, dict):
        return f"a step has exactly one kind, got {sorted(error.instance)}"
    return error.message


def _parse_step(shown: str, steps: list[Any], index: int) -> Step:
    raw: LineDict = steps[index]
    (kind, value), = raw.items()
    line = steps.item_lines[index] if hasattr(steps, "item_lines") else 0
    if value is None:
        args: dict[str, Any] = {}
    elif isinstance(value, dict):
        args = dict(value)
    elif kind in ("open", "expect_nothing", "expect_close", "disconnect", "close"):
        args = {"on": value}
    elif kind == "send_raw":
        args = {"hex": value}
    else:
        args = {"value": value}
    on = str(args.pop("on", DEFAULT_CONNECTION))
    _check_fields(shown, line, kind, args)
    return Step(kind=kind, on=on, args=args, line=line)


def _check_fields(shown: str, line: int, kind: str, args: dict[str, Any]) -> None:
    """Field names are checked at load time so a typo never reaches the broker."""
    if kind in ("connect", "connected"):
        allowed = _field_names("connect") | CONNECT_OPTIONS
        packet = "connect"
    elif kind == "disconnect":
        allowed, packet = _field_names("disconnect"), "disconnect"
    elif kind in ("send", "expect"):
        packet = str(args.get("packet", "")).lower()
        if packet not in PACKET_CLASSES:
            raise ScenarioFileError(shown, line, f"{kind}: unknown packet type {args.get('packet')!r} (one of {', '.join(PACKET_CLASSES)})")
        allowed = _field_names(packet) | (SEND_OPTIONS if kind == "send" else EXPECT_OPTIONS)
    else:
        return
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ScenarioFileError(
            shown, line, f"{kind}: {packet.upper()} has no field {', '.join(map(repr, unknown))} (fields: {', '.join(sorted(allowed - {'on'}))})"
        )


@cache
def _field_names(packet: str) -> set[str]:
    return {f.name for f in dataclasses.fields(PACKET_CLASSES[packet])}
