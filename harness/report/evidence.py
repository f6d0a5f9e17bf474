"""A scenario's evidence in its Allure result: labels, links, one step per scenario step, packets, pcaps.

The runner executes a scenario without knowing about reports and records what happened
(`RunRecord`). After the run, `ScenarioEvidence.recording` turns that record into Allure steps
(with the recorded start and stop times) with what each step sent and received, decoded and in
hex, and attaches one pcap per connection. A scenario that did not pass gets each step's packets
as attachments (hexdumps), the failing step its failure; a passing one gets them inline as step
parameters, because each attachment is a file and files are most of the cost of a report. It also masks secrets in the failure itself before
pytest sees it, so the terminal, JUnit XML, summary.md and the Allure message never carry one.
Without --alluredir (or --report-dir) only the masking is done: the run stays as fast as before.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import spec
from harness.errors import HarnessError
from harness.report.links import ref_link, severity
from harness.report.packets import (
    packet_names,
    packet_parameters,
    render_received,
    render_sent,
    render_stream,
    sent_secrets,
)
from harness.report.pcap import Segment, build_pcap
from harness.report.secrets import Secrets
from harness.scenarios.model import Scenario
from harness.scenarios.runner import RunRecord, ScenarioFailed, SetupFailed, StepRecord
from harness.targets import parse_url

try:  # allure-pytest is a dependency, but a run with `-p no:allure_pytest` must still work
    import allure
    from allure_commons import plugin_manager as allure_hooks
except ImportError:  # pragma: no cover
    allure = None  # type: ignore[assignment]
    allure_hooks = None

# time.monotonic() (what the runner records) to seconds since the epoch (what reports show).
_EPOCH_OFFSET = time.time() - time.monotonic()
_TITLE_LIMIT = 240
TRANSPORT, CLIENT_KIND = "tcp", "raw"  # when the item does not say (the run's default endpoint, the raw client)


def run_secrets(session: Any) -> Secrets:
    """The target's secrets: every account's password and a password in its URL, launched or configured."""
    secrets = Secrets(account.password for account in session.spec.accounts.values())
    if session.spec.url:
        with contextlib.suppress(HarnessError):
            _, _, account = parse_url(session.spec.url, session.spec.source)
            if account is not None:
                secrets.add(account.password)
    endpoint = getattr(session, "_endpoint", None)  # a launched broker's accounts live here
    if endpoint is not None:
        for account in endpoint.accounts.values():
            secrets.add(getattr(account, "password", None))
    return secrets


def allure_enabled(config: pytest.Config) -> bool:
    return allure is not None and bool(getattr(config.option, "allure_report_dir", None))


def _ms(monotonic: float) -> int:
    return int((monotonic + _EPOCH_OFFSET) * 1000)


class ScenarioEvidence:
    def __init__(self, item: pytest.Item, scenario: Scenario, session: Any) -> None:
        self.item = item
        self.config = item.config
        self.scenario = scenario
        self.session = session
        self.enabled = allure_enabled(self.config)
        self.endpoint: Any = None

    # -- before the run ------------------------------------------------------------------------

    def branch(self, text: str) -> None:
        """Which way an either-or scenario went: a parameter that does not split the scenario's history."""
        if self.enabled:
            allure.dynamic.parameter("branch", text, excluded=True)

    def annotate(self) -> None:
        """Title, description, labels, links and severity: the same whether the scenario runs or is skipped."""
        if not self.enabled:
            return
        s, target = self.scenario, self.session.spec.name
        protocol = f"MQTT {s.protocol.label}"
        dynamic = allure.dynamic
        dynamic.title(s.title)
        dynamic.description(self._description())
        dynamic.epic(protocol)
        dynamic.feature(s.area)
        if s.refs:
            dynamic.story(*s.refs)
        # Suites: target, then protocol, then area — the tree a reader of a multi-target run wants.
        dynamic.parent_suite(target)
        dynamic.suite(protocol)
        dynamic.sub_suite(s.area)
        dynamic.label("broker", target)
        dynamic.label("target", target)
        dynamic.label("profile", self.session.profile.name)
        dynamic.label("platform", self.session.profile.name)
        dynamic.label("protocol", s.protocol.label)
        dynamic.label("area", s.area)
        transport = getattr(self.item, "endpoint_name", None) or TRANSPORT
        client = getattr(self.item, "client_kind", None) or CLIENT_KIND
        dynamic.label("transport", transport)
        dynamic.label("client", client)
        # Parameters make each variant (target, transport, client kind) its own history in Allure.
        dynamic.parameter("target", target)
        dynamic.parameter("transport", transport)
        dynamic.parameter("client", client)
        dynamic.severity(allure.severity_level(severity(s.refs, s.protocol)))
        for ref in s.refs:
            link = ref_link(ref, s.protocol)
            if link.url:
                dynamic.link(link.url, name=link.name)

    def _description(self) -> str:
        s = self.scenario
        lines = [s.description.strip(), ""] if s.description else []
        if s.refs:
            lines.append("**Checks**")
            lines.append("")
            for ref in s.refs:
                statement = spec.lookup(s.protocol, ref)
                link = ref_link(ref, s.protocol)
                shown = f"[{ref}]({link.url})" if link.url else ref
                if statement is not None:
                    lines.append(f"- {shown} (MQTT {statement.version.label} §{statement.section}, {statement.actor}): {statement.paraphrase}")
                else:
                    lines.append(f"- {shown}")
            lines.append("")
        version = getattr(self.session, "version", None)
        lines.append(f"Scenario `{self.item.nodeid}` (line {s.line}); target **{self.session.spec.name}**, "
                     f"profile {self.session.profile.name}" + (f", broker version {version}" if version else ""))
        return "\n".join(lines)

    # -- after the run -------------------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self, record: RunRecord, endpoint: Any = None) -> Iterator[None]:
        """Run the scenario inside this; its failure comes out masked, its record goes into the report."""
        self.endpoint = endpoint
        error: ScenarioFailed | SetupFailed | None = None
        try:
            yield
        except (ScenarioFailed, SetupFailed) as exc:
            error = exc
        secrets = run_secrets(self.session).with_values(sent_secrets(record, self.scenario.protocol))
        masked = type(error)(secrets.mask_text(str(error))) if error is not None else None
        if self.enabled:
            self._write(record, secrets, masked)
        if masked is not None:
            raise masked from None

    def _write(self, record: RunRecord, secrets: Secrets, error: Exception | None) -> None:
        listener = self.config.pluginmanager.get_plugin("allure_listener")
        version = self.scenario.protocol
        for number, step_record in enumerate(record.steps, start=1):
            attachments: list[tuple[str, str]] = []
            if error is None:
                # A passing scenario: its packets go inline as step parameters (no file per step).
                parameters = packet_parameters(step_record.sent, step_record.received, version, secrets)
                self._step(listener, number, step_record.step.summary(), secrets, [], None,
                           step_record.started, step_record.stopped or step_record.started, parameters)
                continue
            if step_record.sent:
                attachments.append(("sent: " + ", ".join(packet_names(step_record.sent)),
                                    render_sent(step_record.sent, version, secrets)))
            if step_record.received:
                attachments.append(("received: " + ", ".join(d.packet.TYPE.name for d in step_record.received),
                                    render_received(step_record.received, version, secrets)))
            failure = None
            if step_record.outcome == "failed" and not step_record.received:
                chunks = _received_during(record, step_record)
                if chunks:
                    attachments.append(("received", render_stream(chunks, version, secrets)))
            if step_record.outcome == "failed":
                kind = SetupFailed if isinstance(error, SetupFailed) else ScenarioFailed
                failure = kind(secrets.mask_text(step_record.detail))
            self._step(listener, number, step_record.step.summary(), secrets, attachments, failure,
                       step_record.started, step_record.stopped or step_record.started)
        for number in range(len(record.steps) + 1, len(self.scenario.steps) + 1):
            step = self.scenario.steps[number - 1]
            self._step(listener, number, step.summary(), secrets, [], pytest.skip.Exception("not reached"), 0, 0)
        pcaps = self.pcaps(record, secrets)
        for name, data in pcaps.items():
            allure.attach(data, name=name, attachment_type=allure.attachment_type.PCAP)
        if error is not None:
            self._keep_pcaps(pcaps)

    def _step(self, listener: Any, number: int, summary: str, secrets: Secrets, attachments: list[tuple[str, str]],
              failure: BaseException | None, started: float, stopped: float, parameters: dict[str, str] | None = None) -> None:
        title = secrets.mask_text(f"{number}. {summary}")
        if len(title) > _TITLE_LIMIT:
            title = title[: _TITLE_LIMIT - 3] + "..."
        context = allure.step(title)
        allure_hooks.hook.start_step(uuid=context.uuid, title=title, params=parameters or {})
        result = listener.allure_logger.get_item(context.uuid) if listener is not None else None
        for name, body in attachments:
            allure.attach(body, name=name, attachment_type=allure.attachment_type.TEXT)
        # No traceback: the step's message says what went wrong; a Python stack would only say where in the harness.
        allure_hooks.hook.stop_step(uuid=context.uuid, title=title, exc_type=type(failure) if failure else None,
                                    exc_val=failure, exc_tb=None)
        if result is not None and started:
            result.start, result.stop = _ms(started), _ms(stopped)

    def pcaps(self, record: RunRecord, secrets: Secrets) -> dict[str, bytes]:
        """One pcap per connection, named after the connection and the real endpoint."""
        captures = {}
        aborted = {s.step.on for s in record.steps if s.step.kind == "close" and s.step.args.get("abort")}
        last = max((s.stopped for s in record.steps), default=time.monotonic())
        endpoint = getattr(self, "endpoint", None) or getattr(self.session, "_endpoint", None)
        where = f"{endpoint.host}:{endpoint.port}" if endpoint is not None else "broker"
        if getattr(endpoint, "transport", "tcp") != "tcp":
            # TLS and WebSocket: the capture holds the MQTT bytes as the harness sent and read them, as plain TCP.
            where = f"{endpoint.transport} {where}, MQTT bytes unwrapped"
        for index, (name, client) in enumerate(record.clients.items()):
            opened = record.opened.get(name, last)
            entries = client.transcript
            masked = secrets.mask_stream([e.data for e in entries])
            segments = [Segment(e.direction == "sent", data, opened + e.at + _EPOCH_OFFSET) for e, data in zip(entries, masked, strict=True)]
            closed_event = client.closed
            if name in aborted:
                how = "abort"
            elif closed_event is not None and closed_event.how == "fin":
                how = "server"
            elif closed_event is not None and closed_event.how == "reset":
                how = "reset"
            else:
                how = "client"
            closed_at = opened + closed_event.at if closed_event is not None else last
            closed_at = max([closed_at] + [opened + e.at for e in entries])  # the close comes after the last byte
            captures[f"{name} ({where}).pcap"] = build_pcap(segments, opened + _EPOCH_OFFSET, how, closed_at + _EPOCH_OFFSET,
                                                            client_port=50000 + index)
        return captures

    def _keep_pcaps(self, pcaps: dict[str, bytes]) -> None:
        """A failing scenario's captures also go to <report-dir>/pcap/, for `tshark -r` without the HTML report."""
        directory = self.config.getoption("report_dir", None)
        if not directory:
            return
        folder = Path(directory) / "pcap"
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.item.nodeid.replace("/", "_").replace("::", "__").replace(".yaml", "")
        for name, data in pcaps.items():
            connection = name.split(" ", 1)[0]
            (folder / f"{_safe(stem)}__{_safe(connection)}.pcap").write_bytes(data)


def _received_during(record: RunRecord, step: StepRecord) -> list[bytes]:
    """What the step's connection received while the step ran, from the byte transcript."""
    client, opened = record.clients.get(step.step.on), record.opened.get(step.step.on)
    if client is None or opened is None:
        return []
    end = (step.stopped or step.started) + 0.001
    return [e.data for e in client.transcript if e.direction == "received" and step.started - 0.001 <= opened + e.at <= end]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.[]" else "_" for c in text)
