"""Reading the fields of one packet body, collecting findings as it goes."""

from __future__ import annotations

from typing import Literal

from harness.wire.constants import PacketType, Version
from harness.wire.events import Finding

Role = Literal["client", "server"]


class Broken(Exception):
    """The body cannot be parsed (a field overruns or underruns the remaining length): the stream stops."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


def remaining_length_section(version: Version) -> str:
    return "§2.1.4" if version is Version.V5 else "§2.2.3"


class Context:
    """What the checks of one packet need: version, who sent it, and where findings go."""

    __slots__ = ("version", "decoder_version", "sender", "packet_type", "findings", "learned_version")

    def __init__(self, version: Version, decoder_version: Version | None, role: Role, packet_type: PacketType) -> None:
        self.version = version  # the version this packet is checked against (CONNECT may change it)
        self.decoder_version = decoder_version  # what the decoder was told, None if it is to learn it
        self.sender: Role = "server" if role == "client" else "client"
        self.packet_type = packet_type
        self.findings: list[Finding] = []
        self.learned_version: Version | None = None

    @property
    def v5(self) -> bool:
        return self.version is Version.V5

    @property
    def v31(self) -> bool:
        return self.version is Version.V31

    def rule(self, v311: str, v5: str) -> str:
        """The statement id for this version; 3.1 uses the 3.1.1 id (shared/spec/NOTES.md)."""
        return v5 if self.version is Version.V5 else v311

    def add(self, rule: str, message: str, fatal: bool = True) -> None:
        self.findings.append(Finding(rule, self.version, message, self.packet_type, fatal))


class Reader:
    """A cursor over one packet's bytes; every read checks it stays inside the remaining length."""

    __slots__ = ("data", "pos", "end", "ctx")

    def __init__(self, data: bytes, pos: int, end: int, ctx: Context) -> None:
        self.data = data
        self.pos = pos
        self.end = end
        self.ctx = ctx

    def remaining(self) -> int:
        return self.end - self.pos

    def _overrun(self, what: str, size: int) -> Broken:
        return Broken(
            f"{what} needs {size} byte(s) but only {self.end - self.pos} remain in the packet",
            remaining_length_section(self.ctx.version),
        )

    def u8(self, what: str) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self._overrun(what, 1)
        self.pos = pos + 1
        return self.data[pos]

    def u16(self, what: str) -> int:
        pos = self.pos
        if pos + 2 > self.end:
            raise self._overrun(what, 2)
        self.pos = pos + 2
        return self.data[pos] << 8 | self.data[pos + 1]

    def u32(self, what: str) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise self._overrun(what, 4)
        self.pos = pos + 4
        return int.from_bytes(self.data[pos : pos + 4], "big")

    def varint(self, what: str) -> int:
        """A Variable Byte Integer: at most four bytes, and reported if not in its shortest form."""
        data, pos, end = self.data, self.pos, self.end
        value = 0
        for index in range(4):
            if pos + index >= end:
                raise self._overrun(what, index + 1)
            byte = data[pos + index]
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                self.pos = pos + index + 1
                if index and byte == 0:
                    # A last byte of zero means a shorter encoding existed.
                    self.ctx.add(
                        self.ctx.rule("§2.2.3", "MQTT-1.5.5-1"),
                        f"{what} {value} is encoded in {index + 1} bytes, not the minimum",
                        fatal=self.ctx.v5,
                    )
                return value
        raise Broken(f"{what} has more than four bytes", "§1.5.5" if self.ctx.v5 else "§2.2.3")

    def binary(self, what: str) -> bytes:
        size = self.u16(f"{what} length")
        pos = self.pos
        if pos + size > self.end:
            raise Broken(
                f"{what} declares {size} bytes but only {self.end - pos} remain in the packet",
                remaining_length_section(self.ctx.version),
            )
        self.pos = pos + size
        return self.data[pos : pos + size]

    def text(self, what: str) -> str | bytes:
        """A UTF-8 Encoded String: str if well-formed, else the raw bytes and a finding."""
        raw = self.binary(what)
        try:
            text = raw.decode("utf-8")  # strict: rejects surrogates and overlong forms too
        except UnicodeDecodeError as exc:
            ctx = self.ctx
            ctx.add(
                ctx.rule("MQTT-1.5.3-1", "MQTT-1.5.4-1"),
                f"{what} is not well-formed UTF-8 ({exc.reason} at byte {exc.start}): {raw[:40].hex(' ')}",
                fatal=not ctx.v31,
            )
            return raw
        if "\x00" in text:
            ctx = self.ctx
            ctx.add(
                ctx.rule("MQTT-1.5.3-2", "MQTT-1.5.4-2"),
                f"{what} contains U+0000 at character {text.index(chr(0))}: {text[:40]!r}",
                fatal=not ctx.v31,
            )
        odd = next((c for c in text if _discouraged(c)), None)
        if odd is not None:
            # The sender SHOULD NOT use these; a receiver MAY close (3.1.1 §1.5.3, 5.0 §1.5.4): not fatal.
            ctx = self.ctx
            ctx.add(ctx.rule("§1.5.3", "§1.5.4"),
                    f"{what} contains U+{ord(odd):04X}, a control character or non-character: {text[:40]!r}", fatal=False)
        return text

    def rest(self) -> bytes:
        data = self.data[self.pos : self.end]
        self.pos = self.end
        return data


def _discouraged(character: str) -> bool:
    """U+0001..U+001F, U+007F..U+009F and the non-characters: strings should not carry them."""
    code = ord(character)
    return (0x01 <= code <= 0x1F or 0x7F <= code <= 0x9F or 0xFDD0 <= code <= 0xFDEF
            or (code & 0xFFFE) == 0xFFFE)
