"""SmartREST rows, the CSV-like payload of Cumulocity's MQTT topics (C8Y-SMARTREST).

The rules of the document (shared seeds/cumulocity-iot-mqtt.txt, "SmartREST escaping"): one message
per row, rows separated by `\\n`, values separated by `,`; a value containing `"`, `,`, leading or
trailing white space, a line break, a carriage return or a tab must be enclosed in `"`, and a `"`
inside it is written `\\"`. The same rules apply to what the platform sends.

Sans-IO: `parse_rows` turns a payload into rows of values (or raises `SmartRestError` naming the
row), `format_row` does the reverse for the platform's own messages.
"""

from __future__ import annotations

_MUST_QUOTE = ('"', ",", "\n", "\r", "\t")


class SmartRestError(ValueError):
    """A payload that is not valid SmartREST CSV; `row` is the 1-based row the problem is in."""

    def __init__(self, row: int, message: str, template: str = "", rows: list[list[str]] | None = None) -> None:
        super().__init__(f"row {row}: {message}")
        self.row = row
        self.message = message
        self.template = template  # the row's first value, as far as it could be read
        self.rows = rows or []  # the rows before the bad one, which were valid


def parse_rows(payload: bytes | str) -> list[list[str]]:
    """Every row of a payload; empty rows (a trailing `\\n`) are skipped."""
    text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    rows: list[list[str]] = []
    row: list[str] = []
    value: list[str] = []
    quoted = False  # inside a quoted value
    closed = False  # a quoted value's closing quote was seen: only `,` or a row end may follow
    touched = False  # the current value has begun (so an empty last value still counts)
    number = 1
    i = 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\" and i + 1 < len(text) and text[i + 1] == '"':
                value.append('"')
                i += 2
                continue
            if char == '"':
                quoted, closed = False, True
            else:
                value.append(char)
            i += 1
            continue
        if char == ",":
            row.append("".join(value))
            value, closed, touched = [], False, True
        elif char == "\n":
            if row or value or touched or closed:
                row.append("".join(value))
                rows.append(row)
            row, value, closed, touched = [], [], False, False
            number += 1
        elif closed:
            raise SmartRestError(number, f"text after a closing quote: {char!r}", row[0] if row else "", rows)
        elif char == '"':
            if value:
                raise SmartRestError(number, "a quote inside an unquoted value", row[0] if row else "", rows)
            quoted, touched = True, True
        else:
            value.append(char)
            touched = True
        i += 1
    if quoted:
        raise SmartRestError(number, "unterminated quoted value", row[0] if row else "".join(value), rows)
    if row or value or touched or closed:
        row.append("".join(value))
        rows.append(row)
    return rows


def format_value(value: str) -> str:
    if any(c in value for c in _MUST_QUOTE) or value != value.strip():
        return '"' + value.replace('"', '\\"') + '"'
    return value


def format_row(values: list[str] | tuple[str, ...]) -> str:
    return ",".join(format_value(str(v)) for v in values)
