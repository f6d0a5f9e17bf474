"""Shared by the report tests: secrets the brokers use, scenario texts, and readers of a run's output."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

# A JWT-shaped password: long enough that describe() previews cut it, so piecewise masking matters.
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJoYXJuZXNzLXRlc3QiLCJleHAiOjQxMDI0NDQ4MDB9."
       "c2VjcmV0LXNpZ25hdHVyZS1vZi10aGUtdGVzdA")
RESTRICTED_PASSWORD = "Ro-Pa55w0rd-Q7xZ-42k"

PASSING = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: accepted
    title: A valid CONNECT is accepted
    refs: [MQTT-3.1.4-4]
    steps:
      - connected:
      - expect_nothing:
      - disconnect:
"""

FAILING = """
defaults: {protocol: "3.1.1", area: connect}
scenarios:
  - id: expects-refusal
    title: Expects a refusal the broker does not give
    description: The broker accepts; this scenario wrongly expects CONNACK 5.
    refs: [MQTT-3.2.2-5]
    steps:
      - connect:
      - expect: {packet: connack, reason_code: 5}
      - disconnect:
"""


def write_tree(pytester: pytest.Pytester, files: dict[str, str], targets: str) -> None:
    for name, text in files.items():
        path = pytester.path / "scenarios" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    (pytester.path / "targets.yaml").write_text(textwrap.dedent(targets), encoding="utf-8")


def url_target(name: str, url: str, extra: str = "") -> str:
    """A targets.yaml with one URL target whose accounts come from the environment (MQTT_TEST_*)."""
    return (f"default: {name}\ntargets:\n  {name}:\n    url: {url}\n    accounts:\n"
            "      default: {username: {env: MQTT_TEST_USER}, password: {env: MQTT_TEST_PASSWORD}}\n"
            "      restricted: {username: restricted, password: {env: MQTT_TEST_RO_PASSWORD}}\n" + extra)


def allure_results(directory: Path) -> dict[str, dict[str, Any]]:
    """Allure result files by test name (the scenario title)."""
    results = {}
    for path in directory.glob("*-result.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        results[data["name"]] = data
    return results


def labels(result: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for label in result["labels"]:
        found.setdefault(label["name"], []).append(label["value"])
    return found


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it: apt-get install {tool})")
    return path
