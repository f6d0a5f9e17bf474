"""A fuzz run as Allure results: one test per protocol version run and one per distinct finding.

The version's test passes when every case was as specified, fails on a violation and is broken when
the broker died or hung (the run stopped). A finding's test fails, carries the case, what the decoder
said and what the broker did, and has the scenario file that reproduces it attached. History ids are
the finding's kind, so the same finding in the next run lines up with this one.
"""

from __future__ import annotations

from pathlib import Path

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import (
    ATTACHMENT_PATTERN,
    Attachment,
    Label,
    Parameter,
    Status,
    StatusDetails,
    TestResult,
)
from allure_commons.utils import md5, uuid4

from harness.fuzz import FuzzRun
from harness.fuzz.findings import finding_key, refs_for
from harness.fuzz.runner import Outcome


def write_results(folder: Path, runs: list[FuzzRun], groups: list[list[Outcome]], scenarios: list[Path],
                  seed: int, broker: str, started_ms: int, stopped_ms: int) -> None:
    logger = AllureFileLogger(folder)
    labels = [Label("parentSuite", broker), Label("suite", "harness fuzz"), Label("framework", "harness fuzz")]
    for run in runs:
        counts = run.verdicts
        status = Status.BROKEN if run.stopped else Status.FAILED if run.violations else Status.PASSED
        message = (f"stopped at {run.stopped}" if run.stopped else
                   f"{counts['violation']} of {len(run.outcomes)} cases violate the specification" if run.violations else
                   f"all {len(run.outcomes)} cases as specified")
        if run.not_cleared:
            message += f"; the retained messages its cases set were not deleted: {run.not_cleared}"
        name = f"MQTT {run.version.label}: {len(run.outcomes)} fuzz cases"
        logger.report_result(TestResult(
            uuid=uuid4(), name=name, fullName=f"harness fuzz {broker} MQTT {run.version.label}",
            historyId=md5(broker, "fuzz", run.version.label), status=status, statusDetails=StatusDetails(message=message),
            start=started_ms, stop=stopped_ms, labels=[*labels, Label("subSuite", f"MQTT {run.version.label}")],
            parameters=[Parameter("seed", str(seed))] + [Parameter(v, str(n)) for v, n in sorted(counts.items())]))
    for members, scenario in zip(groups, scenarios, strict=True):
        first = members[0]
        case = first.case
        attachments = []
        for body, title, kind, ext in ((scenario.read_text(encoding="utf-8"), scenario.name, "text/yaml", "yaml"),
                                       (case.data.hex(" "), "the case's bytes (hex)", "text/plain", "txt")):
            source = ATTACHMENT_PATTERN.format(prefix=uuid4(), ext=ext)
            logger.report_attached_data(body, source)
            attachments.append(Attachment(name=title, source=source, type=kind))
        logger.report_result(TestResult(
            uuid=uuid4(), name=case.title, fullName=f"{broker} {scenario.name}",
            historyId=md5(broker, *finding_key(first)), status=Status.FAILED,
            statusDetails=StatusDetails(message=f"MQTT {case.version.label} case {case.number} ({len(members)} like it): "
                                                f"the strict decoder: {case.why}; the broker: {first.observed}"),
            start=started_ms, stop=stopped_ms, attachments=attachments,
            labels=[*labels, Label("subSuite", f"MQTT {case.version.label} findings"),
                    *(Label("tag", ref) for ref in refs_for(case))],
            parameters=[Parameter("seed", str(seed)), Parameter("case", str(case.number))]))
