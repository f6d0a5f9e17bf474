"""Turning scenario values into packet field values: variables, per-profile choices, hex bytes.

A string may hold `${name}` or `${name:arg}` references. A string that is exactly one reference
takes the variable's own type (an int stays an int), so `packet_id: ${pid}` works.

Value forms in a scenario (anywhere a field value goes):
- `{hex: "ed a0 80"}`: these bytes (a string field given bytes is sent with its length prefix);
- `{raw_hex: "00 05 41"}`: these bytes verbatim in place of the field, no length prefix;
- `{by_profile: {strict: 2, cumulocity: 5, default: 2}}`: the value for the target's profile;
- `{hmac_sha256: {key: "${password}", data: "${nonce}"}}`: the 32-byte HMAC-SHA256 of `data` under
  `key` (text is taken as UTF-8): the answer to an enhanced-authentication challenge, e.g. the
  reference broker's HMAC-SHA256 method (a nonce saved from its AUTH, keyed by the password).
"""

import hashlib
import hmac
import random
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.wire import RawField

_REFERENCE = re.compile(r"\$\{([a-z_][a-z0-9_]*)(?::([A-Za-z0-9_.-]+))?\}")
_ALPHANUMERIC = string.ascii_letters + string.digits


class UnresolvableValue(Exception):
    """A value that cannot be resolved; the runner reports it with the step's line."""


# Random names need to be unique, not secret: a seeded generator makes a 65,500-character topic in
# milliseconds where secrets.choice, a system call per character, takes a tenth of a second.
_RANDOM = random.Random(secrets.randbits(128))


def random_alphanumeric(length: int) -> str:
    return "".join(_RANDOM.choices(_ALPHANUMERIC, k=length))


def parse_hex(text: str) -> bytes:
    cleaned = re.sub(r"[\s:]", "", text)
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise UnresolvableValue(f"not hex bytes: {text!r}") from exc


@dataclass
class Variables:
    """What `${...}` can refer to during one scenario run."""

    cid: str
    profile: str
    accounts: Mapping[str, Any]  # name -> object with .username and .password
    acl_allowed_prefix: str
    saved: dict[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)  # the target's settings, for ${setting:NAME}
    _resolving: set[str] = field(default_factory=set, repr=False)  # settings being resolved (a loop guard)

    def lookup(self, name: str, arg: str | None) -> Any:
        functions: dict[str, Callable[[str | None], Any]] = {
            "cid": lambda _: self.cid,
            "topic": lambda _: f"mqc/{self.cid}",
            "acl_allowed": lambda _: f"{self.acl_allowed_prefix}/{self.cid}",
            "profile": lambda _: self.profile,
            "random": lambda a: random_alphanumeric(int(a or 8)),
            "user": lambda a: self._credential("username", a),
            "password": lambda a: self._credential("password", a),
            "setting": self._setting,
        }
        if name in functions:
            return functions[name](arg)
        if name in self.saved:
            return self.saved[name]
        raise UnresolvableValue(f"unknown variable ${{{name}}}")

    def _setting(self, name: str | None) -> Any:
        """A setting's value. Text may itself hold references (`device_id: "${cid}"`), resolved here, so
        a profile can default to a fresh value per scenario where a user's target names a fixed one."""
        if not name or name not in self.settings:
            raise UnresolvableValue(f"the target's profile has no setting {name!r}")
        value = self.settings[name]
        if not isinstance(value, str) or "${" not in value:
            return value
        if name in self._resolving:
            raise UnresolvableValue(f"setting {name!r} refers to itself")
        self._resolving.add(name)
        try:
            return substitute(value, self)
        finally:
            self._resolving.discard(name)

    def account(self, name: str | None) -> Any:
        key = name or "default"
        if key not in self.accounts:
            raise UnresolvableValue(f"the target has no account named {key!r}")
        return self.accounts[key]

    def _credential(self, which: str, name: str | None) -> Any:
        account = self.account(name)
        value = getattr(account, which)
        if value is None and getattr(account, "anonymous", False):
            raise UnresolvableValue(f"${{{which}{':' + name if name else ''}}}: the target's {name or 'default'} account "
                                    "is anonymous (it has no user name or password)")
        return value


def references(value: Any) -> Iterator[tuple[str, str | None]]:
    """Every `${name}` / `${name:arg}` in a value (strings inside mappings and lists too), as (name, arg)."""
    if isinstance(value, str):
        for match in _REFERENCE.finditer(value):
            yield match.group(1), match.group(2)
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from references(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from references(inner)


def substitute(text: str, variables: Variables) -> Any:
    whole = _REFERENCE.fullmatch(text)
    if whole:
        return variables.lookup(whole.group(1), whole.group(2))
    result = _REFERENCE.sub(lambda m: str(variables.lookup(m.group(1), m.group(2))), text)
    if "${" in _REFERENCE.sub("", text):
        raise UnresolvableValue(f"malformed variable reference in {text!r} (expected ${{name}} or ${{name:arg}})")
    return result


def choose_by_profile(options: Mapping[str, Any], profile: str) -> Any:
    if profile in options:
        return options[profile]
    if "default" in options:
        return options["default"]
    raise UnresolvableValue(f"by_profile has no value for profile {profile!r} and no default")


def resolve(value: Any, variables: Variables) -> Any:
    """Resolve variables, by_profile, hex and raw_hex everywhere in a value; keep matcher operators."""
    if isinstance(value, str):
        return substitute(value, variables)
    if isinstance(value, Mapping):
        if len(value) == 1:
            (key, inner), = value.items()
            if key == "by_profile":
                return resolve(choose_by_profile(inner, variables.profile), variables)
            if key == "hex":
                return parse_hex(str(resolve(inner, variables)))
            if key == "raw_hex":
                return RawField(parse_hex(str(resolve(inner, variables))))
            if key == "hmac_sha256":
                return hmac_sha256(resolve(inner, variables))
        return {key: resolve(inner, variables) for key, inner in value.items()}
    if isinstance(value, list):
        return [resolve(item, variables) for item in value]
    return value


def hmac_sha256(operands: Any) -> bytes:
    """`{key, data}` -> HMAC-SHA256(key, data); text is UTF-8, bytes (a saved nonce) as they are."""
    if not isinstance(operands, Mapping) or set(operands) != {"key", "data"}:
        raise UnresolvableValue(f"hmac_sha256: expected {{key: ..., data: ...}}, got {operands!r}")

    def as_bytes(name: str) -> bytes:
        value = operands[name]
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        raise UnresolvableValue(f"hmac_sha256: {name} must be text or bytes, got {value!r}")

    return hmac.new(as_bytes("key"), as_bytes("data"), hashlib.sha256).digest()
