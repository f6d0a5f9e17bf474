"""Turn a probe's findings into files: a draft profile (the format of harness/profiles/*.yaml, each value
commented with its evidence), a targets-file entry that uses it, and a JSON record of every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness.probe.checks import Draft, Finding

# Capabilities the probe drafts, in the order a profile lists them.
CAPABILITY_ORDER = ("will", "retain", "qos1", "qos2", "persistent_session", "several_in_flight",
                    "wildcard_subscriptions", "shared_subscriptions", "subscription_identifiers", "topic_alias",
                    "zero_length_client_id", "client_id_over_23_refused")


def _comment(text: str) -> str:
    return " ".join(str(text).split())  # one line, whatever the broker sent


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip().removesuffix("...").strip()


def profile_yaml(draft: Draft, name: str, url: str, when: str, seconds: float) -> str:
    accepted = draft.accepted()
    lines = [
        f"# Drafted by `harness probe {url}` on {when} in {seconds:.1f} s. Each value's comment is its",
        "# evidence: what the probe sent and what came back. Check them before relying on the profile.",
    ]
    if draft.stopped:
        lines.append(f"# INCOMPLETE: {_comment(draft.stopped)}; fields after that point are missing.")
    lines += [
        f"name: {name}",
        f"description: {_scalar(f'Drafted by harness probe from {url} ({when}).')}",
        f"protocols: {json.dumps([v.label for v in accepted])}",
    ]
    for version, finding in draft.protocols.items():
        lines.append(f"  # {version.label}: {_comment(finding.evidence)}")
    lines.append("capabilities:")
    for key in [*CAPABILITY_ORDER, *sorted(set(draft.capabilities) - set(CAPABILITY_ORDER))]:
        finding = draft.capabilities.get(key)
        if finding is not None:
            lines.append(f"  {key}: {_scalar(finding.value)}  # {_comment(finding.evidence)}")
    lines.append("settings:")
    for key, finding in sorted(draft.settings.items()):
        lines.append(f"  {key}: {_scalar(finding.value)}  # {_comment(finding.evidence)}")
    if draft.observations:
        lines.append("# What else the probe saw (not profile fields; the suite's scenarios check these themselves):")
        for key, finding in draft.observations.items():
            lines.append(f"#   {key}: {_comment(_scalar(finding.value))} ({_comment(finding.evidence)})")
    return "\n".join(lines) + "\n"


def targets_yaml(name: str, url: str, profile_path: str, credentials: bool) -> str:
    lines = [
        "# A targets-file entry for the probed broker: merge it into your targets.yaml (or pass this file",
        f"# with --targets-file), then: pytest --target {name}",
        "targets:",
        f"  {name}:",
        f"    description: {_scalar(f'Probed broker at {url}')}",
        f"    url: {url}",
        f"    profile: {profile_path}   # relative to this file",
    ]
    if credentials:
        lines += ["    accounts:",
                  "      default: {username: {env: MQTT_USER}, password: {env: MQTT_PASSWORD}}   # never the credentials themselves"]
    return "\n".join(lines) + "\n"


def record_json(draft: Draft, steps: list[dict[str, Any]], url: str, when: str, seconds: float) -> str:
    def findings(items: dict[Any, Finding]) -> dict[str, Any]:
        return {getattr(k, "label", k): {"value": f.value, "evidence": f.evidence} for k, f in items.items()}

    return json.dumps({
        "url": url, "when": when, "seconds": round(seconds, 3), "stopped": draft.stopped,
        "protocols": findings(draft.protocols), "capabilities": findings(draft.capabilities),
        "settings": findings(draft.settings), "observations": findings(draft.observations),
        "announced": draft.announced, "check_seconds": {k: round(v, 3) for k, v in draft.durations.items()},
        "steps": steps,
    }, indent=2, default=repr) + "\n"


def write(out: Path, draft: Draft, steps: list[dict[str, Any]], name: str, url: str, when: str, seconds: float,
          credentials: bool) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"profile": out / f"{name}.yaml", "targets": out / "targets.yaml", "record": out / "probe.json"}
    paths["profile"].write_text(profile_yaml(draft, name, url, when, seconds), encoding="utf-8")
    paths["targets"].write_text(targets_yaml(name, url, f"./{paths['profile'].name}", credentials), encoding="utf-8")
    paths["record"].write_text(record_json(draft, steps, url, when, seconds), encoding="utf-8")
    return paths
