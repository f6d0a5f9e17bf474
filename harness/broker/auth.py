"""Who may connect (user name and password, 5.0 enhanced authentication) and what they may touch (ACL).

ACL: a list of entries `{user, allow: [{topic, access}]}`; `user: "*"` applies to every client,
anonymous ones included. Patterns are topic filters in which `%c` stands for the ClientId and `%u`
for the user name. PUBLISH needs a `write` pattern matching the topic; SUBSCRIBE needs a `read`
pattern covering every topic the filter can match. With no `acl` section everything is allowed;
with one, whatever no entry allows is denied.

Enhanced authentication is pluggable: `ENHANCED_METHODS` maps an Authentication Method name to a
factory of `EnhancedAuth` exchanges. The built-in `HMAC-SHA256` is a challenge/response:
CONNECT carries the user name as Authentication Data, the server answers AUTH 0x18 with a random
nonce, the client answers AUTH 0x18 with HMAC-SHA256(key=password, msg=nonce).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from harness.broker.topics import filter_covers, matches

if TYPE_CHECKING:  # types only: config imports this module's method registry
    from harness.broker.config import AclEntry, AuthConfig


class Authenticator:
    """User name / password check against the config's user table."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config

    def check(self, username: str | None, password: bytes | None) -> Literal["ok", "bad_credentials", "anonymous"]:
        if username is None:
            # MQTT allows a password without a user name only in 5.0; either way it names nobody.
            return "ok" if self.config.allow_anonymous else "anonymous"
        expected = self.config.users.get(username)
        if expected is None:
            # An unknown name is anonymous-equivalent only when no user table exists at all.
            if not self.config.users and self.config.allow_anonymous:
                return "ok"
            return "bad_credentials"
        given = password or b""
        if not hmac.compare_digest(expected.encode("utf-8"), given):
            return "bad_credentials"
        return "ok"

    def password_of(self, username: str) -> str | None:
        return self.config.users.get(username)


class ClientAcl:
    """The ACL resolved for one connection (`%c`/`%u` substituted), with a cache for PUBLISH topics."""

    __slots__ = ("_read", "_write", "_pub_cache", "unrestricted")

    def __init__(self, read: list[str], write: list[str], unrestricted: bool = False) -> None:
        self._read = read
        self._write = write
        self.unrestricted = unrestricted
        self._pub_cache: dict[str, bool] = {}

    def can_publish(self, topic: str) -> bool:
        if self.unrestricted:
            return True
        cached = self._pub_cache.get(topic)
        if cached is None:
            # ACL patterns are not subscriptions: "#" grants $-topics too (no MQTT-4.7.2-1 rule).
            cached = any(matches(p, topic, dollar_rule=False) for p in self._write)
            if len(self._pub_cache) > 1024:
                self._pub_cache.clear()
            self._pub_cache[topic] = cached
        return cached

    def can_subscribe(self, topic_filter: str) -> bool:
        if self.unrestricted:
            return True
        return any(filter_covers(p, topic_filter) for p in self._read)


class Acl:
    def __init__(self, entries: list[AclEntry] | None) -> None:
        self.entries = entries

    def for_client(self, username: str | None, client_id: str) -> ClientAcl:
        if self.entries is None:
            return ClientAcl([], [], unrestricted=True)
        read: list[str] = []
        write: list[str] = []
        for entry in self.entries:
            if entry.user != "*" and entry.user != username:
                continue
            for pattern, access in entry.allow:
                resolved = _substitute(pattern, username, client_id)
                if resolved is None:
                    continue
                if "read" in access:
                    read.append(resolved)
                if "write" in access:
                    write.append(resolved)
        return ClientAcl(read, write)


def _substitute(pattern: str, username: str | None, client_id: str) -> str | None:
    """Fill %c / %u; None when a value is missing or could widen the pattern (contains / + #)."""
    if "%u" in pattern:
        if not username or any(ch in username for ch in "/+#"):
            return None
        pattern = pattern.replace("%u", username)
    if "%c" in pattern:
        if not client_id or any(ch in client_id for ch in "/+#"):
            return None
        pattern = pattern.replace("%c", client_id)
    return pattern


# -- 5.0 enhanced authentication -------------------------------------------------------------------

@dataclass
class AuthStep:
    """One server move in an AUTH exchange: ask for more (`continue`), accept or refuse."""

    status: Literal["continue", "success", "failure"]
    data: bytes | None = None  # Authentication Data to send with AUTH 0x18 (or CONNACK on success)
    username: str | None = None  # identity established on success (for the ACL)


class EnhancedAuth(Protocol):
    """One exchange (a CONNECT or a re-authentication). New instance per exchange."""

    def start(self, data: bytes | None, username: str | None) -> AuthStep: ...
    def step(self, data: bytes | None) -> AuthStep: ...


class HmacSha256Auth:
    method = "HMAC-SHA256"

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator
        self._user: str | None = None
        self._nonce = b""

    def start(self, data: bytes | None, username: str | None) -> AuthStep:
        # The user name travels as Authentication Data; the CONNECT User Name is the fallback.
        name = data.decode("utf-8", "replace") if data else username
        self._user = name
        self._nonce = os.urandom(16)
        # An unknown user still gets a nonce, so the exchange does not reveal which names exist.
        return AuthStep("continue", self._nonce)

    def step(self, data: bytes | None) -> AuthStep:
        password = self._auth.password_of(self._user) if self._user else None
        if password is None or not self._nonce or data is None:
            return AuthStep("failure")
        expected = hmac.new(password.encode("utf-8"), self._nonce, hashlib.sha256).digest()
        self._nonce = b""  # one answer per challenge
        if hmac.compare_digest(expected, data):
            return AuthStep("success", username=self._user)
        return AuthStep("failure")


def hmac_sha256_response(password: str, nonce: bytes) -> bytes:
    """What a client answers to an HMAC-SHA256 challenge (for tests and harness scenarios)."""
    return hmac.new(password.encode("utf-8"), nonce, hashlib.sha256).digest()


ENHANCED_METHODS: dict[str, Callable[[Authenticator], EnhancedAuth]] = {
    HmacSha256Auth.method: HmacSha256Auth,
}
