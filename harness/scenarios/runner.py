"""The one scenario runner: executes a scenario's steps against an endpoint with raw-socket clients.

Every step either completes or raises ScenarioFailed with a message that names the step (and its
line), what was expected, what arrived (decoded and in hex), and the statements the scenario
checks. Problems that are not the broker's fault (cannot connect, bad value in the file) raise
SetupFailed instead, so a report can tell "broker wrong" from "harness or setup wrong".
"""

import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import spec
from harness.clients import (
    Address,
    Closed,
    HandshakeFailed,
    PacketReceived,
    RawClient,
    StreamMalformed,
    TlsFailure,
    TlsMaterial,
    TlsOptions,
    apply_tls_overrides,
    open_transport,
)
from harness.clients.events import Event
from harness.scenarios.matchers import describe_expected, mismatches, value_text
from harness.scenarios.model import Scenario, Step
from harness.scenarios.values import UnresolvableValue, Variables, parse_hex, resolve
from harness.wire import (
    PACKET_CLASSES,
    Connect,
    Decoded,
    Disconnect,
    Pingreq,
    Publish,
    Version,
    describe,
    hexdump,
    packet_fields,
)

# How long the cleanup after a run waits for the broker to show it cleared the run's retained messages.
CLEANUP_WAIT_S = 1.0
# A timer (Keep Alive, a platform idle limit) that the broker missed by less than this is measured again.
BORDERLINE_S = 0.5
# How long past a timer's limit the runner keeps waiting, to say when the broker did act (at least 2 s).
MEASURE_PAST_LIMIT_S = 2.0
# How long a `disconnect` step waits for the broker to close the connection after the DISCONNECT
# (every launched broker does within a few ms). Until it has, it may not have processed the
# DISCONNECT: a next step that connects with the same ClientId would race it (the takeover then
# publishes a will the DISCONNECT discarded). A broker that keeps the connection open only costs
# this wait, never a verdict.
DISCONNECT_CLOSE_WAIT_S = 1.0


class ScenarioFailed(AssertionError):
    """The broker did not behave as the scenario expects."""


class TimerBorderline(ScenarioFailed):
    """A timer verdict within BORDERLINE_S of its limit: the runner measures once more before it counts."""

    def __init__(self, text: str, measured: str) -> None:
        super().__init__(text)
        self.measured = measured


class SetupFailed(Exception):
    """The scenario could not be carried out for a reason that is not the broker's behaviour."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    accounts: Mapping[str, Any]  # name -> object with .username and .password
    profile: str = "strict"
    acl_allowed_prefix: str = "acl/allowed"
    settings: Mapping[str, Any] = field(default_factory=dict)  # profile settings, overridden by the target
    transport: str = "tcp"  # tcp, tls, ws or wss
    path: str = "/mqtt"  # WebSocket path
    tls: TlsOptions | None = None  # for tls and wss
    named: Mapping[str, Address] = field(default_factory=dict)  # every endpoint of the target, for `open: {endpoint}`
    tls_material: TlsMaterial = field(default_factory=TlsMaterial)  # files `tls:` overrides name

    @property
    def address(self) -> Address:
        return Address(self.transport, self.host, self.port, self.path, self.tls)


@dataclass
class StepRecord:
    step: Step
    outcome: str = "passed"  # passed, failed
    detail: str = ""
    received: list[Decoded] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the step began and ended, for report timelines
    stopped: float = 0.0
    branch: list[str] = field(default_factory=list)  # which way an either-or expectation went


@dataclass
class RunRecord:
    """What happened, for reports: each step and each connection's byte transcript."""

    steps: list[StepRecord] = field(default_factory=list)
    clients: dict[str, RawClient] = field(default_factory=dict)
    opened: dict[str, float] = field(default_factory=dict)  # connection -> time.monotonic() when it was opened
    attempt_start: int = 0  # index in `steps` where the last attempt began (a timer measured twice runs twice)

    def branch(self) -> str:
        """Which way the broker went where the scenario accepts several outcomes (`{one_of: ...}`, `or_close`,
        `may_send`), step by step: `step 2 CONNACK reason_code=5`; empty when it accepts only one."""
        attempt = self.steps[self.attempt_start:]
        return "; ".join(f"step {number} {'; '.join(record.branch)}"
                         for number, record in enumerate(attempt, start=1) if record.branch)


class ScenarioRunner:
    def __init__(self, scenario: Scenario, endpoint: Endpoint, cid: str, timeout: float = 3.0, client_kind: str = "raw") -> None:
        self.scenario = scenario
        self.client_kind = client_kind  # raw, or paho (harness.clients.paho: same interface, paho-mqtt underneath)
        self.endpoint = endpoint
        self.timeout = timeout
        self.variables = Variables(
            cid=cid,
            profile=endpoint.profile,
            accounts=endpoint.accounts,
            acl_allowed_prefix=endpoint.acl_allowed_prefix,
            settings=endpoint.settings,
        )
        self.record = RunRecord()
        # Connections whose close an `expect` with `or_close` already accepted: `expect_close` passes there.
        self.closed_seen: set[str] = set()
        # Topics this run published a retained message to: cleared once it is over (_clear_retained).
        self.retained_topics: list[Any] = []
        # A timer verdict measured twice (TimerBorderline): what the first, borderline, measurement was.
        self.remeasured: str | None = None

    # -- driving -------------------------------------------------------------------------------

    def run(self) -> RunRecord:
        try:
            try:
                self._run_steps()
            except TimerBorderline as first:
                # Scheduling jitter on a loaded machine is not the broker's: measure once more, on fresh
                # connections and a fresh ClientId. The second measurement is the verdict.
                self._start_over()
                try:
                    self._run_steps()
                except ScenarioFailed as second:
                    raise ScenarioFailed(f"{second}\nmeasured twice: the first run was borderline too ({first.measured})") from None
                self.remeasured = first.measured
        finally:
            if self.record.steps and not self.record.steps[-1].stopped:
                self.record.steps[-1].stopped = time.monotonic()
            for client in self.record.clients.values():
                client.close()
            if self.retained_topics:
                self._clear_retained()
        return self.record

    def _start_over(self) -> None:
        """Fresh connections and ClientId for a second measurement; the first run's stay in the record (evidence)."""
        for name in list(self.record.clients):
            self.record.clients[name].close()
            self.record.clients[f"{name}-first"] = self.record.clients.pop(name)
            self.record.opened[f"{name}-first"] = self.record.opened.pop(name, 0.0)
        self.closed_seen.clear()
        self.variables.saved.clear()
        self.record.attempt_start = len(self.record.steps)
        self.variables.cid = self.variables.cid[:22] + "m"

    def _run_steps(self) -> None:
        for number, step in enumerate(self.scenario.steps, start=1):
            record = StepRecord(step, started=time.monotonic())
            self.record.steps.append(record)
            try:
                getattr(self, f"_step_{step.kind}")(step, record)
                record.stopped = time.monotonic()
            except ScenarioFailed as failure:
                record.outcome, record.detail = "failed", str(failure)
                text = self._failure_text(number, step, str(failure))
                if isinstance(failure, TimerBorderline):
                    raise TimerBorderline(text, failure.measured) from None
                raise ScenarioFailed(text) from None
            except (SetupFailed, UnresolvableValue) as problem:
                record.outcome, record.detail = "failed", str(problem)
                raise SetupFailed(f"step {number} (line {step.line}) {step.kind}: {problem}") from None
            except (TypeError, ValueError, OverflowError, struct.error) as problem:
                # A value the codec cannot encode (text where a number belongs, a packet id of
                # 70000): the scenario file's fault, reported as one line like any bad value.
                record.outcome, record.detail = "failed", str(problem)
                raise SetupFailed(
                    f"step {number} (line {step.line}) {step.kind}: cannot encode: {type(problem).__name__}: {problem}"
                ) from None

    def _clear_retained(self) -> None:
        """Clear the retained messages this run published, once it is over (passed or not), and wait until the
        broker shows it has: a scenario's own clearing PUBLISH may still be in the broker's queue when the next
        scenario connects, and a failed run never reaches it. A leftover must not reach later scenarios (amqtt
        sends retained messages to clients that never subscribed to them).

        On a connection of its own with the default account: SUBSCRIBE to each topic, PUBLISH an empty retained
        message to it, and wait (bounded) for those to come back forwarded (MQTT-3.3.1-10), which a broker does
        only once it has handled them. Best effort, never part of the verdict or the evidence."""
        topics = list(dict.fromkeys(self.retained_topics))
        client = None
        try:
            transport = open_transport(self.endpoint.address, connect_timeout=self.timeout, subprotocols=("mqtt",))
            client = RawClient(transport, self.scenario.protocol, name="cleanup")
            client.send_packet(self._connect_packet("cleanup", {"clean_session": True}))
            filters = [{"topic_filter": topic, "qos": 0} for topic in topics]
            client.send_packet(self._build("subscribe", {"packet_id": 1, "subscriptions": filters}))
            for topic in topics:
                client.send_packet(Publish(topic=topic, payload=b"", retain=True))
            waiting = len(topics)
            deadline = time.monotonic() + min(self.timeout, CLEANUP_WAIT_S)
            while waiting and (left := deadline - time.monotonic()) > 0:
                event = client.next_event(left)
                if event is None or isinstance(event, Closed | StreamMalformed):
                    return
                if isinstance(event, PacketReceived):
                    packet = event.decoded.packet
                    if isinstance(packet, Publish) and not packet.payload:
                        waiting -= 1
            client.send_packet(Disconnect())
        except Exception:  # noqa: BLE001 - cleanup must never turn into the scenario's verdict
            pass
        finally:
            if client is not None:
                client.close()

    def _failure_text(self, number: int, step: Step, detail: str) -> str:
        refs = ", ".join(self.scenario.refs) or "-"
        lines = [f"step {number} (line {step.line}) {step.summary()}", detail, f"checks: {refs}"]
        for ref in self.scenario.refs:
            statement = spec.lookup(self.scenario.protocol, ref)
            if statement is not None:
                lines.append(f"  {ref} ({statement.version.label}, {statement.actor}): {statement.paraphrase}")
        return "\n".join(lines)

    def _client(self, step: Step, open_if_needed: bool = True) -> RawClient:
        client = self.record.clients.get(step.on)
        if client is None:
            if not open_if_needed:
                raise UnresolvableValue(f"connection {step.on!r} is not open")
            client = self._open(step.on)
        return client

    def _address(self, options: Mapping[str, Any]) -> Address:
        """The run's endpoint, or the named one, with the step's TLS overrides applied."""
        address = self.endpoint.address
        if options.get("endpoint"):
            address = self.endpoint.named.get(options["endpoint"])  # type: ignore[assignment]
            if address is None:
                raise SetupFailed(f"the target offers no {options['endpoint']!r} endpoint (it has: {', '.join(self.endpoint.named) or 'none'})")
        try:
            return apply_tls_overrides(address, options.get("tls") or {}, self.endpoint.tls_material)
        except ValueError as exc:
            raise SetupFailed(str(exc)) from None

    def _open(self, name: str, options: Mapping[str, Any] | None = None) -> RawClient:
        if name in self.record.clients:
            raise UnresolvableValue(f"connection {name!r} is already open")
        options = options or {}
        address = self._address(options)
        subprotocols = tuple(options.get("subprotocols", ("mqtt",)))
        if self.client_kind == "paho":
            from harness.clients.paho import PahoClient

            client: Any = PahoClient(address, self.scenario.protocol, name=name, connect_timeout=self.timeout)
        else:
            try:
                transport = open_transport(address, connect_timeout=self.timeout, subprotocols=subprotocols)
            except (TlsFailure, HandshakeFailed) as exc:
                raise SetupFailed(f"cannot open {address.url}: {exc}") from None
            except (TimeoutError, OSError) as exc:
                raise SetupFailed(f"cannot reach broker at {address.url}: {exc}") from None
            except ValueError as exc:  # a bad TLS option (unknown version)
                raise SetupFailed(f"cannot open {address.url}: {exc}") from None
            client = RawClient(transport, self.scenario.protocol, name=name)
        self.record.clients[name] = client
        self.record.opened[name] = time.monotonic()
        return client

    def _resolve(self, value: Any) -> Any:
        return resolve(value, self.variables)

    # -- building packets ----------------------------------------------------------------------

    def _build(self, kind: str, fields: Mapping[str, Any]) -> Any:
        # The packet classes turn YAML shapes (mappings, lists, text) into their typed fields.
        try:
            return PACKET_CLASSES[kind](**fields)
        except (TypeError, ValueError) as exc:
            raise UnresolvableValue(f"cannot build {kind.upper()}: {exc}") from None

    def _connect_packet(self, connection: str, args: dict[str, Any]) -> Connect:
        """CONNECT with the run's defaults for what the step leaves out: ClientId and account."""
        account_name = args.pop("account", "default")
        if "client_id" not in args:
            args["client_id"] = self.variables.cid if connection == "main" else f"{self.variables.cid}{connection}"
        if account_name not in (None, "none"):
            account = self.variables.account(account_name)  # an anonymous one: no User Name, no Password
            args.setdefault("username", account.username)
            args.setdefault("password", account.password)
        return self._build("connect", args)

    # -- steps ---------------------------------------------------------------------------------

    def _step_open(self, step: Step, record: StepRecord) -> None:
        self._open(step.on, self._resolve(step.args))

    def _step_expect_tls_failure(self, step: Step, record: StepRecord) -> None:
        """Opening fails in TLS for the given reason. A TLS 1.3 server checks the client certificate
        after the client's side of the handshake, so its refusal can arrive on the first read: then
        a CONNECT is sent and the alert must come instead of CONNACK."""
        args = self._resolve(step.args)
        expected = args.get("reason")
        wanted = f"the TLS handshake fails: {describe_expected({'reason': expected})}"
        try:
            client = self._open(step.on, args)
        except SetupFailed as problem:
            if not isinstance(problem.__context__, TlsFailure):
                raise
            self._check_tls_reason(expected, problem.__context__.reason, str(problem), wanted)
            return
        try:
            record.sent.append(client.send_packet(self._connect_packet(step.on, {})))
        except TlsFailure as failure:  # paho: the handshake happens in its connect()
            self._check_tls_reason(expected, failure.reason, str(failure), wanted)
            return
        event = client.next_event(self.timeout)
        if isinstance(event, Closed) and event.tls_reason:
            self._check_tls_reason(expected, event.tls_reason, event.detail, wanted)
            return
        if event is None:
            got = f"the TLS handshake succeeded, and nothing arrived within {self.timeout:g} s of CONNECT"
        elif isinstance(event, Closed):
            got = f"the TLS handshake succeeded, then the connection closed without a TLS alert ({event.how}: {event.detail})"
        elif isinstance(event, PacketReceived):
            got = f"the TLS handshake succeeded and the broker answered CONNECT: {describe(event.decoded.packet, self.scenario.protocol)}"
        else:
            got = "the TLS handshake succeeded, then undecodable bytes arrived"
        raise ScenarioFailed(f"expected: {wanted}\nreceived: {got}")

    @staticmethod
    def _check_tls_reason(expected: Any, reason: str, detail: str, wanted: str) -> None:
        problems = mismatches({"reason": expected}, {"reason": reason})
        if problems:
            raise ScenarioFailed(f"expected: {wanted}\nreceived: {detail}\nmismatch: " + "; ".join(problems))

    def _step_expect_websocket(self, step: Step, record: StepRecord) -> None:
        client = self._client(step, open_if_needed=False)
        transport = getattr(client, "transport", None)
        if not hasattr(transport, "subprotocol"):
            raise SetupFailed(f"connection {step.on!r} is not a WebSocket (ws:// or wss://)")
        expected = {k: v for k, v in self._resolve(step.args).items() if k in ("subprotocol", "status")}
        actual = {"subprotocol": transport.subprotocol, "status": transport.status}  # type: ignore[union-attr]
        problems = mismatches(expected, actual)
        if problems:
            raise ScenarioFailed(
                f"expected: WebSocket handshake {describe_expected(expected)}\n"
                f"received: {transport.status}; Sec-WebSocket-Protocol: {transport.subprotocol or '(none)'}\n"  # type: ignore[union-attr]
                "mismatch: " + "; ".join(problems)
            )

    def _step_connect(self, step: Step, record: StepRecord) -> None:
        client = self._client(step)
        args = self._resolve(step.args)
        framing = _framing(args)
        packet = self._connect_packet(step.on, args)
        try:
            record.sent.append(client.send_packet(packet, **framing))
        except (TlsFailure, HandshakeFailed, OSError) as exc:
            # Only the paho client connects on CONNECT (the raw one opened its connection before).
            raise SetupFailed(f"cannot open {getattr(client, 'address', self.endpoint.address).url}: {exc}") from None

    def _step_connected(self, step: Step, record: StepRecord) -> None:
        self._step_connect(step, record)
        self._expect_packet(step, record, {"packet": "connack", "reason_code": 0}, self.timeout)

    def _step_send(self, step: Step, record: StepRecord) -> None:
        client = self._client(step)
        args = self._resolve(step.args)
        kind = str(args.pop("packet")).lower()
        overrides = {key: args.pop(key) for key in ("flags", "remaining_length", "truncate", "trailing", "body") if key in args}
        for key in ("trailing", "body"):
            if isinstance(overrides.get(key), str):
                overrides[key] = parse_hex(overrides[key])
        if isinstance(overrides.get("remaining_length"), str):
            overrides["remaining_length"] = parse_hex(overrides["remaining_length"])
        framing = _framing(args)
        packet = self._connect_packet(step.on, args) if kind == "connect" else self._build(kind, args)
        if isinstance(packet, Publish) and packet.retain and packet.payload:
            self.retained_topics.append(packet.topic)
        record.sent.append(client.send_packet(packet, **framing, **overrides))

    def _step_send_raw(self, step: Step, record: StepRecord) -> None:
        client = self._client(step)
        # Resolved apart: a mapping with a `hex` key is itself a value form (bytes) to the resolver.
        data = parse_hex(str(self._resolve(step.args["hex"])))
        client.send_bytes(data, **_framing(self._resolve({k: v for k, v in step.args.items() if k != "hex"})))
        record.sent.append(data)

    def _step_disconnect(self, step: Step, record: StepRecord) -> None:
        client = self._client(step, open_if_needed=False)
        fields = self._resolve(step.args)
        record.sent.append(client.send_packet(self._build("disconnect", fields) if fields else Disconnect()))
        if isinstance(client, RawClient):  # paho closes the connection itself right after the DISCONNECT
            client.await_peer_close(DISCONNECT_CLOSE_WAIT_S)
        client.close()

    def _step_close(self, step: Step, record: StepRecord) -> None:
        self._client(step, open_if_needed=False).close(abort=bool(step.args.get("abort", False)))

    def _step_wait(self, step: Step, record: StepRecord) -> None:
        # Only for timers the specification defines (keepalive, expiry): the schema demands a reason.
        time.sleep(float(step.args["seconds"]))

    def _step_expect(self, step: Step, record: StepRecord) -> None:
        args = self._resolve(step.args)
        timed = "timeout" in args  # a step's own timeout waits on a timer the specification sets (a will delay, an expiry)
        timeout = float(args.pop("timeout", self.timeout))
        save = args.pop("save", {}) or {}
        allowed = set(args.pop("allow_findings", []) or [])
        may_send = list(args.pop("may_send", []) or [])
        or_close = bool(args.pop("or_close", False))
        decoded = self._expect_packet(step, record, args, timeout, allowed, may_send, or_close, timed=timed)
        if decoded is None:  # or_close: the broker closed instead, which the step allows; nothing to save
            self.closed_seen.add(step.on)  # a later expect_close on it passes
            return
        fields = packet_fields(decoded.packet)
        for variable, field_name in save.items():
            self.variables.saved[variable] = _field_at(fields, str(field_name), decoded.packet.TYPE.name)

    def _expect_packet(
        self, step: Step, record: StepRecord, expected: Mapping[str, Any], timeout: float, allowed: set[str] | None = None,
        may_send: list[Mapping[str, Any]] | None = None, or_close: bool = False, timed: bool = False,
    ) -> Decoded | None:
        """The next packet matches `expected`. Packets matching an entry of `may_send` may come first
        (each entry once); with `or_close` a close instead of the packet is accepted (returns None).

        `timed`: the wait is a protocol timer's: past `timeout` the step keeps watching a bounded while,
        so a late packet is named with when it came, and one within BORDERLINE_S is measured again."""
        client = self._client(step, open_if_needed=False)
        optional = list(may_send or [])
        wanted = describe_expected(expected) + (" (or the broker closes the connection)" if or_close else "")
        if optional:
            wanted += " (before it, may come: " + " or ".join(describe_expected(m) for m in optional) + ")"
        started = time.monotonic()
        past = MEASURE_PAST_LIMIT_S if timed else 0.0
        deadline = started + timeout + past
        while True:
            event = client.next_event(max(deadline - time.monotonic(), 0))
            if event is None:
                raise ScenarioFailed(f"expected: {wanted}\nreceived: nothing within {timeout + past:g} s"
                                     + (f" (the limit is {timeout:g} s)" if past else ""))
            if or_close and isinstance(event, Closed):
                record.branch.append(f"closed instead of {str(expected.get('packet', 'the packet')).upper()}")
                return None
            decoded = self._packet_or_fail(event, wanted, allowed or set())
            record.received.append(decoded)
            chosen: list[str] = []
            problems = _match_packet(expected, decoded, chosen)
            late = time.monotonic() - started - timeout
            if not problems and late > 0 and timed:
                text = (f"expected: {wanted} within {timeout:g} s\n{_received_text(decoded, self.scenario.protocol)}\n"
                        f"it came after {timeout + late:.2f} s, {late:.2f} s late")
                if late <= BORDERLINE_S:
                    raise TimerBorderline(text, f"came after {timeout + late:.2f} s, limit {timeout:g} s")
                raise ScenarioFailed(text)
            if not problems:
                if chosen or or_close:
                    record.branch.append(" ".join([decoded.packet.TYPE.name, *chosen[:1]]) + "".join(f", {c}" for c in chosen[1:]))
                return decoded
            index = next((i for i, matcher in enumerate(optional) if not _match_packet(matcher, decoded)), None)
            if index is None:
                raise ScenarioFailed(f"expected: {wanted}\n{_received_text(decoded, self.scenario.protocol)}\nmismatch: " + "; ".join(problems))
            record.branch.append(f"first {_short(decoded, self.scenario.protocol)}")
            del optional[index]  # each allowed packet may come once

    def _packet_or_fail(self, event: Event, wanted: str, allowed: set[str]) -> Decoded:
        if isinstance(event, Closed):
            raise ScenarioFailed(f"expected: {wanted}\nreceived: connection closed ({event.how}: {event.detail})")
        if isinstance(event, StreamMalformed):
            finding = event.malformed.finding
            raise ScenarioFailed(
                f"expected: {wanted}\nreceived: malformed bytes, broker breaks {finding.rule}: {finding.message}\n"
                f"{_indent(hexdump(event.malformed.raw))}"
            )
        assert isinstance(event, PacketReceived)
        findings = [f for f in event.decoded.findings if f.rule not in allowed]
        if findings:
            broken = "; ".join(f"{f.rule}: {f.message}" for f in findings)
            raise ScenarioFailed(f"expected: {wanted}\n{_received_text(event.decoded, self.scenario.protocol)}\nbroker breaks {broken}")
        return event.decoded

    def _step_expect_close(self, step: Step, record: StepRecord) -> None:
        client = self._client(step, open_if_needed=False)
        args = self._resolve(step.args)
        timeout = float(args.get("timeout", self.timeout))
        not_before = args.get("not_before")
        # Brokers sample idle timers coarsely, so the target may allow a grace period past the limit.
        grace = float(self.endpoint.settings.get("keepalive_grace", 1.0))
        if "keepalive" in args:
            # MQTT-3.1.2-24 (5.0: 3.1.2-22): the server closes after 1.5 x Keep Alive of silence.
            keepalive = float(args["keepalive"])
            not_before = keepalive if not_before is None else not_before
            timeout = 1.5 * keepalive + grace
        if "idle_setting" in args:
            # A platform's own idle limit (CloudPlugs: 5 minutes whatever Keep Alive says), in seconds,
            # from the target's settings: the close comes after it (less 0.5 s: the broker counts from
            # the last packet it read, before this step began) and by it plus the keepalive_grace.
            name = str(args["idle_setting"])
            if not isinstance(self.endpoint.settings.get(name), int | float):
                raise SetupFailed(f"idle_setting: the target has no numeric setting {name!r}")
            idle = float(self.endpoint.settings[name])
            not_before = max(idle - 0.5, 0) if not_before is None else not_before
            timeout = idle + grace
        may_send: list[Mapping[str, Any]] = list(args.get("may_send", []))
        allowed_text = " or ".join(describe_expected(m) for m in may_send) or "nothing"
        came: list[str] = []  # what may_send accepted, named when a later packet breaks the step
        if step.on in self.closed_seen:
            return  # an earlier expect accepted the close (or_close): it is the close this step expects
        # A timer (Keep Alive, an idle limit): the limit, in words, and a bounded wait past it to say
        # when the broker did close.
        rule = ("1.5 x Keep Alive + the target's keepalive_grace" if "keepalive" in args
                else f"setting {args['idle_setting']} + keepalive_grace" if "idle_setting" in args else "")
        past = max(MEASURE_PAST_LIMIT_S, grace) if rule else 0.0
        # A timer runs from the client's last write (the broker's idle clock starts when it reads it),
        # not from this step's start: a busy machine may take a while to get from one to the other.
        started = client.last_sent_at() if rule else time.monotonic()
        deadline = started + timeout + past
        while True:
            event = client.next_event(max(deadline - time.monotonic(), 0))
            if event is None:
                raise ScenarioFailed(f"expected: the broker closes the connection within {timeout:g} s"
                                     + (f" ({rule})" if rule else "")
                                     + f"\nreceived: still open after {timeout + past:g} s")
            if isinstance(event, Closed):
                elapsed = time.monotonic() - started
                if not_before is not None and elapsed < float(not_before):
                    text = (f"expected: the connection stays open for at least {not_before} s\n"
                            f"received: closed after {elapsed:.2f} s ({event.how}), {float(not_before) - elapsed:.2f} s early")
                    if rule and float(not_before) - elapsed <= BORDERLINE_S:
                        raise TimerBorderline(text, f"closed after {elapsed:.2f} s, not before {not_before} s")
                    raise ScenarioFailed(text)
                if rule and elapsed > timeout:
                    text = (f"expected: the broker closes the connection within {timeout:g} s ({rule})\n"
                            f"received: closed after {elapsed:.2f} s ({event.how}), {elapsed - timeout:.2f} s late")
                    if elapsed - timeout <= BORDERLINE_S:
                        raise TimerBorderline(text, f"closed after {elapsed:.2f} s, limit {timeout:g} s")
                    raise ScenarioFailed(text)
                if args.get("may_send"):
                    record.branch.append(f"closed after {', '.join(came)}" if came else "closed with nothing before")
                return
            decoded = self._packet_or_fail(event, f"close (before it: {allowed_text})", set())
            record.received.append(decoded)
            for index, matcher in enumerate(may_send):
                if not _match_packet(matcher, decoded):
                    del may_send[index]  # each allowed packet may come once
                    came.append(_short(decoded, self.scenario.protocol))
                    break
            else:
                already = f"; it came: {', '.join(came)}" if came else ""
                raise ScenarioFailed(
                    f"expected: the broker closes the connection (before it: {allowed_text}{already})\n"
                    f"{_received_text(decoded, self.scenario.protocol)}"
                )

    def _step_expect_nothing(self, step: Step, record: StepRecord) -> None:
        # A PINGRESP proves the broker has processed everything sent before the PINGREQ: if nothing
        # else arrived first, nothing else was going to. No sleep is involved.
        # Packets matching an entry of `may_send` may still arrive before the PINGRESP (each entry once).
        client = self._client(step, open_if_needed=False)
        optional: list[Mapping[str, Any]] = list(self._resolve(step.args).get("may_send", []) or [])
        wanted = "nothing (PINGRESP to the barrier PINGREQ)"
        if optional:
            wanted = "nothing but " + " or ".join(describe_expected(m) for m in optional) + " (then PINGRESP to the barrier PINGREQ)"
        record.sent.append(client.send_packet(Pingreq()))
        deadline = time.monotonic() + self.timeout
        while True:
            event = client.next_event(max(deadline - time.monotonic(), 0))
            if event is None:
                raise ScenarioFailed(f"expected: {wanted}\nreceived: no PINGRESP within {self.timeout:g} s")
            decoded = self._packet_or_fail(event, wanted, set())
            record.received.append(decoded)
            if decoded.packet.TYPE.name == "PINGRESP":
                if step.args.get("may_send") and not record.branch:
                    record.branch.append("nothing came")
                return
            index = next((i for i, matcher in enumerate(optional) if not _match_packet(matcher, decoded)), None)
            if index is None:
                raise ScenarioFailed(f"expected: {wanted}\n{_received_text(decoded, self.scenario.protocol)}")
            record.branch.append(f"got {_short(decoded, self.scenario.protocol)}")
            del optional[index]


def _short(decoded: Decoded, version: Version) -> str:
    """A received packet in a few words, for a branch: its type and reason code(s)."""
    fields = packet_fields(decoded.packet)
    codes = [f"{name}={value_text(fields[name])}" for name in ("reason_code", "reason_codes") if name in fields]
    return " ".join([decoded.packet.TYPE.name, *codes]) if codes else decoded.packet.TYPE.name


def _framing(args: dict[str, Any]) -> dict[str, Any]:
    """Pop the framing options (frames, hold, ws_opcode) a step may carry; only those given are passed on."""
    framing = {key: args.pop(key) for key in ("frames", "hold", "ws_opcode") if key in args}
    frames = framing.get("frames")
    if frames is not None and not (isinstance(frames, int) and frames >= 1 or isinstance(frames, list)):
        raise UnresolvableValue(f"frames: expected a count or a list of byte offsets, got {frames!r}")
    if framing.get("ws_opcode", "binary") not in ("binary", "text"):
        raise UnresolvableValue(f"ws_opcode: expected binary or text, got {framing['ws_opcode']!r}")
    return framing


def _match_packet(expected: Mapping[str, Any], decoded: Decoded, chosen: list[str] | None = None) -> list[str]:
    kind = str(expected.get("packet", "")).lower()
    actual_kind = decoded.packet.TYPE.name.lower()
    if kind and kind != actual_kind:
        return [f"packet: expected {kind.upper()}, got {actual_kind.upper()}"]
    fields = {k: v for k, v in expected.items() if k not in ("packet", "flags")}
    problems = mismatches(fields, packet_fields(decoded.packet), chosen=chosen)
    if "flags" in expected:
        problems += mismatches(expected["flags"], decoded.flags, "flags")
    return problems


def _field_at(fields: Mapping[str, Any], path: str, packet: str) -> Any:
    """The value at a dotted path of a packet's fields: `packet_id`, `properties.authentication_data`,
    `reason_codes.0` (a list index)."""
    value: Any = fields
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise UnresolvableValue(f"save: {packet} has no field {path!r}")
    return value


def _received_text(decoded: Decoded, version: Version) -> str:
    return f"received: {describe(decoded.packet, version)}\n{_indent(hexdump(decoded.raw))}"


def _indent(text: str) -> str:
    return "\n".join("          " + line for line in text.splitlines())

