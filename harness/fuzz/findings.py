"""Every violation the fuzzer finds becomes a scenario file the ordinary pytest run reproduces.

Identical findings are merged: the same packet kind, mutation kind, expected outcome, broker answer
and statements make one scenario (the first case of them, the count in its comment). The case is
already one packet after a valid CONNECT (or instead of it), so the scenario is that: connect, the
bytes, then `expect_close` or a PINGREQ that must be answered.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness import spec
from harness.fuzz.cases import Case
from harness.fuzz.runner import Outcome
from harness.wire import Version


def finding_key(outcome: Outcome) -> tuple[str, ...]:
    case = outcome.case
    mutation = re.sub(r"\d+", "N", case.mutation)  # "bit 3 of byte 7 flipped" -> "bit N of byte N flipped"
    observed = re.sub(r"\d+(\.\d+)?", "N", outcome.observed)
    return (case.version.label, case.base.split()[0], mutation, case.expect, observed, *case.rules)


ANSWERS = ("puback", "pubrec", "pubrel", "pubcomp", "suback", "unsuback")


def refs_for(case: Case) -> list[str]:
    """The statements the scenario checks: the decoder's numbered findings that this version has, then
    the general one its last step rests on (close on a protocol violation; answer a PINGREQ)."""
    refs = [r for r in case.rules if spec.is_protocol_ref(r) and spec.lookup(case.version, r) is not None]
    if case.expect == "close":
        general = "MQTT-4.13.1-1" if case.version is Version.V5 else "MQTT-4.8.0-1"
    else:
        general = "MQTT-3.12.4-1"
    return list(dict.fromkeys([*refs, general]))


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def scenario_text(outcome: Outcome, seed: int, count: int) -> str:
    case = outcome.case
    sid = f"fuzz-{case.version.label.replace('.', '')}-s{seed}-c{case.number}"
    steps: list[dict[str, object]] = []
    if not case.before_connect:
        steps.append({"connected": None})
    steps.append({"send_raw": _hex(case.data)} if case.split is None else
                 {"send_raw": {"hex": _hex(case.data), "frames": [case.split]}})
    # What a broker may answer to the packet itself before the verdict's step (a PUBACK to a PUBLISH
    # that decoded, say), and in 5.0 the DISCONNECT that may say why it closes.
    may_send: list[dict[str, object]] = [{"packet": p} for p in ANSWERS]
    if case.version is Version.V5 and case.expect != "works":
        may_send.append({"packet": "disconnect"})
    # The PINGREQ the fuzz case sent follows the bytes here too: a broker must close without answering it.
    if case.expect == "close":
        steps += [{"send": {"packet": "pingreq"}}, {"expect_close": {"may_send": may_send}}]
    elif case.expect == "works":
        steps += [{"send": {"packet": "pingreq"}}, {"expect": {"packet": "pingresp", "may_send": may_send}}]
    else:  # the server may refuse the packet by closing, or carry on: it must do one of them
        steps += [{"send": {"packet": "pingreq"}}, {"expect": {"packet": "pingresp", "or_close": True, "may_send": may_send}}]
    title = (f"{case.title}: "
             + {"close": "the server must close the connection", "works": "the connection must keep working",
                "either": "the server closes the connection or carries on"}[case.expect])
    scenario: dict[str, object] = {"id": sid, "title": title}
    scenario["refs"] = refs_for(case)
    scenario["steps"] = steps
    header = [
        f"# Found by `harness fuzz --seed {seed}` (MQTT {case.version.label}, case {case.number}; {count} like it).",
        f"# The strict decoder: {case.why}.",
        f"# The broker: {outcome.observed}.",
    ]
    body = yaml.safe_dump({"defaults": {"protocol": case.version.label, "area": "fuzz"}, "scenarios": [scenario]},
                          sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + body.replace("null", "").replace(": \n", ":\n")


def group(outcomes: list[Outcome]) -> list[list[Outcome]]:
    """The violations, identical ones together, in the order found."""
    groups: dict[tuple[str, ...], list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(finding_key(outcome), []).append(outcome)
    return list(groups.values())


def write_findings(folder: Path, groups: list[list[Outcome]], seed: int) -> list[Path]:
    """One scenario file per group, from its first member (minimised by the caller)."""
    paths = []
    if groups:
        folder.mkdir(parents=True, exist_ok=True)
    for members in groups:
        first = members[0]
        path = folder / f"fuzz-{first.case.version.label.replace('.', '')}-s{seed}-c{first.case.number}.yaml"
        path.write_text(scenario_text(first, seed, len(members)), encoding="utf-8")
        paths.append(path)
    return paths
