"""Masking of passwords, tokens and JWTs in everything a run writes.

A secret is replaced by `*` of the same length, in bytes (packet captures: lengths and TCP sequence
numbers stay valid) and in text (failure messages, attachments, summaries). In text a secret is
also found in the shapes the harness prints bytes in: hex with or without spaces, Python's bytes
repr, URL-encoded, and inside a hexdump (which is parsed back into bytes, masked and re-rendered,
because a secret there is split across lines and columns). A long secret (a JWT) is also masked
piecewise, so a truncated preview of it (describe() shows the first 48 bytes of a field) does not
leak its beginning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from harness.wire import hexdump

MIN_LENGTH = 4  # shorter values would mask ordinary text everywhere; such a "secret" protects nothing
WINDOW = 16  # a secret longer than this is also masked in any run of this many of its characters
PIECE = 6  # ... and in any prefix or suffix of at least this many

_HEXDUMP_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<offset>[0-9a-f]{8})  (?P<hex>[0-9a-f ]{2,49}?)\s*\|.*\|$")


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)


class Secrets:
    """The secrets of a run (target accounts, URL password) plus those a scenario sent (CONNECT passwords)."""

    def __init__(self, values: Iterable[str | bytes] = ()) -> None:
        self._values: set[bytes] = set()
        self._pattern: re.Pattern[str] | None = None
        self._byte_pattern: re.Pattern[bytes] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str | bytes | None) -> None:
        if value is None:
            return
        data = _as_bytes(value)
        if len(data) >= MIN_LENGTH and data not in self._values and set(data) != {0x2A}:
            self._values.add(data)
            self._pattern = self._byte_pattern = None

    def with_values(self, values: Iterable[str | bytes | None]) -> Secrets:
        """A copy with more secrets: a scenario's own on top of the run's."""
        copy = Secrets(self._values)
        for value in values:
            copy.add(value)
        return copy

    @property
    def values(self) -> frozenset[bytes]:
        return frozenset(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    # -- bytes ---------------------------------------------------------------------------------

    def mask_bytes(self, data: bytes) -> bytes:
        if not self._values or not data:
            return data
        if self._byte_pattern is None:
            fragments = sorted(self._values, key=len, reverse=True)
            self._byte_pattern = re.compile(b"|".join(re.escape(f) for f in fragments))
        return self._byte_pattern.sub(lambda m: b"*" * len(m.group()), data)

    def mask_stream(self, chunks: list[bytes]) -> list[bytes]:
        """Mask a stream recorded in chunks (a secret may straddle two reads) and cut it back the same way."""
        if not self._values:
            return chunks
        masked = self.mask_bytes(b"".join(chunks))
        result, position = [], 0
        for chunk in chunks:
            result.append(masked[position : position + len(chunk)])
            position += len(chunk)
        return result

    # -- text ----------------------------------------------------------------------------------

    def mask_text(self, text: str) -> str:
        if not self._values or not text:
            return text
        if "|" in text:
            text = self._mask_hexdumps(text)
        return self._text_pattern().sub(lambda m: "*" * len(m.group()), text)

    def _text_pattern(self) -> re.Pattern[str]:
        if self._pattern is None:
            forms: set[str] = set()
            for secret in self._values:
                text = secret.decode("utf-8", "replace")
                forms.update({text, repr(secret)[2:-1], secret.hex(), secret.hex().upper(), secret.hex(" "),
                              secret.hex(" ").upper(), quote(text, safe="")})
                if len(text) > WINDOW:
                    # Any run of WINDOW characters, and any prefix or suffix of at least PIECE: a
                    # preview that cuts the secret leaves a prefix of it, next to text of its own.
                    forms.update(text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1))
                    forms.update(text[:n] for n in range(PIECE, len(text)))
                    forms.update(text[-n:] for n in range(PIECE, len(text)))
            ordered = sorted((f for f in forms if len(f) >= MIN_LENGTH), key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(f) for f in ordered))
        return self._pattern

    def _mask_hexdumps(self, text: str) -> str:
        lines = text.split("\n")
        out: list[str] = []
        index = 0
        while index < len(lines):
            match = _HEXDUMP_LINE.match(lines[index])
            if match is None or int(match["offset"], 16) != 0:
                out.append(lines[index])
                index += 1
                continue
            indent, data, end = match["indent"], bytearray(), index
            while end < len(lines):
                line = _HEXDUMP_LINE.match(lines[end])
                if line is None or line["indent"] != indent or int(line["offset"], 16) != len(data):
                    break
                data += bytes.fromhex(line["hex"].replace(" ", ""))
                end += 1
            masked = self.mask_bytes(bytes(data))
            if masked != data:
                out.extend(indent + row for row in hexdump(masked).split("\n"))
            else:
                out.extend(lines[index:end])
            index = end
        return "\n".join(out)
