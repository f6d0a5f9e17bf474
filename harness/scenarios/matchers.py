"""Comparing what arrived with what a scenario expects.

An expected value is either a plain value (equal), a mapping compared as a subset (only the keys it
names are checked), a list compared item by item, or one of these operators:
`{one_of: [...]}`, `{not: value}`, `{any: true}` (present, any value), `{absent: true}`,
`{json: expected}` (the value, e.g. a payload, parsed as JSON and compared as above: platform
messages such as Watson IoT monitoring carry times and ports no scenario can know).
"""

import json
from collections.abc import Mapping
from typing import Any

OPERATORS = {"one_of", "not", "any", "absent", "json"}
_MISSING = object()


def is_operator(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in OPERATORS


def _same(expected: Any, actual: Any) -> bool:
    # Text given in YAML matches bytes on the wire (payloads) and vice versa (hex-given topics).
    if isinstance(expected, str) and isinstance(actual, bytes | bytearray):
        return expected.encode("utf-8") == bytes(actual)
    if isinstance(expected, bytes | bytearray) and isinstance(actual, str):
        return bytes(expected) == actual.encode("utf-8", "surrogatepass")
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(expected) == bool(actual) and isinstance(actual, bool | int) and isinstance(expected, bool | int)
    if isinstance(expected, list) and isinstance(actual, tuple | list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
    return expected == actual


def mismatches(expected: Any, actual: Any, path: str = "", chosen: list[str] | None = None) -> list[str]:
    """Every difference, as `path: expected X, got Y` lines; empty when it matches.

    `chosen`, when given, collects which way each `{one_of: ...}` went (`reason_code=5`): a scenario
    that accepts several outcomes says which one the broker took."""
    label = path or "value"
    if is_operator(expected):
        (operator, operand), = expected.items()
        if operator == "absent":
            return [] if actual is _MISSING else [f"{label}: expected absent, got {actual!r}"]
        if operator == "one_of" and actual is _MISSING:
            # `{one_of: [..., {absent: true}]}`: a field the server may leave out.
            if any(not mismatches(option, actual, path) for option in operand):
                if chosen is not None:
                    chosen.append(f"{label} absent")
                return []
            return [f"{label}: expected one of {operand!r}, but it is absent"]
        if actual is _MISSING:
            return [f"{label}: expected {describe_expected(expected)}, but it is absent"]
        if operator == "any":
            return []
        if operator == "one_of":
            if any(not mismatches(option, actual, path) for option in operand):
                if chosen is not None:
                    chosen.append(f"{label}={value_text(actual)}")
                return []
            return [f"{label}: expected one of {operand!r}, got {actual!r}"]
        if operator == "json":
            try:
                parsed = json.loads(bytes(actual) if isinstance(actual, bytes | bytearray) else actual)
            except (TypeError, ValueError):
                return [f"{label}: expected JSON, got {actual!r}"]
            return mismatches(operand, parsed, path, chosen)
        if operator == "not":
            return [f"{label}: expected anything but {operand!r}, got {actual!r}"] if not mismatches(operand, actual, path) else []
    if actual is _MISSING:
        return [f"{label}: expected {expected!r}, but it is absent"]
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{label}: expected a mapping {expected!r}, got {actual!r}"]
        problems: list[str] = []
        for key, inner in expected.items():
            problems += mismatches(inner, actual.get(key, _MISSING), f"{path}.{key}" if path else str(key), chosen)
        return problems
    if isinstance(expected, list) and isinstance(actual, list | tuple) and len(expected) == len(actual):
        problems = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problems += mismatches(e, a, f"{label}[{index}]", chosen)
        return problems
    return [] if _same(expected, actual) else [f"{label}: expected {expected!r}, got {actual!r}"]


def value_text(value: Any) -> str:
    """A received value, short: reason codes of 0x80 and above in hex, as the specification writes them."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, int):
        text = repr(bytes(value)) if isinstance(value, bytearray) else repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"0x{value:02X}" if value >= 0x80 else str(value)


def describe_expected(expected: Mapping[str, Any]) -> str:
    """One-line text of an expectation, e.g. `CONNACK reason_code=one of [4, 5]`."""
    parts = []
    for key, value in expected.items():
        if key == "packet":
            continue
        if is_operator(value):
            (operator, operand), = value.items()
            text = {"one_of": f"one of {operand!r}", "not": f"not {operand!r}", "any": "any", "absent": "absent",
                    "json": f"JSON {operand!r}"}[operator]
        else:
            text = repr(value)
        parts.append(f"{key}={text}")
    head = str(expected.get("packet", "")).upper()
    return " ".join([head, *parts]).strip()
