"""Itron (HiveMQ) MQTT API (shared seeds/itron-mqtt-api.txt; ids IT-* in harness/spec/vendors.tsv).

Passwords are JWTs (HS256, stdlib hmac) signed with `jwt_secret` from the personality options;
claims: `sub` (the user), `exp`, and optionally `roles` (IT-ROLES). A token without `roles` is the
harness's own operator account: the broker's ACL alone governs it, so the generic suite runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from harness.broker.personality import ClientInfo, Decision, Personality, Refusal

DEFAULT_SECRET = "itron-reference-secret"  # the reference broker's; a real tenant's is unknown to us
TOKEN_LIFETIME_S = 24 * 3600

# IT-ROLES: role -> (topic below the tenant, highest QoS granted). All three may only subscribe.
ROLES: dict[str, tuple[str, int]] = {
    "BUBBLE_UP_ALARM_CONSUMER": ("alert", 1),
    "BUBBLE_UP_READ_CONSUMER": ("read", 0),
    "DEVICE_PRESENCE_CONSUMER": ("last_heard", 0),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims: dict[str, Any], secret: str) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def verify_jwt(token: str, secret: str, now: float) -> dict[str, Any] | None:
    """The claims of a valid, unexpired HS256 token, else None."""
    try:
        head, body, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        if json.loads(_unb64(head)).get("alg") != "HS256":
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
        return None
    return claims


def _within(topic_filter: str, prefix: str) -> bool:
    """Whether every topic the filter can match lies below `prefix/` (IT-WILDCARDS inside it work)."""
    return topic_filter.startswith(prefix + "/")


class ItronPersonality(Personality):
    name = "itron"

    def __init__(self, config: Any, broker: Any = None) -> None:
        super().__init__(config, broker)
        # IT-PUB-DENY (a setting): an unauthorized PUBLISH is acknowledged and dropped, or closes.
        choice = str(self.options.get("unauthorized_publish", config.denied_publish))
        if choice in ("ack_and_drop", "disconnect"):
            config.denied_publish = choice

    def serves(self, listener: str) -> bool:
        # IT-TLS: TLS is required; a connection over any other transport (plain TCP) is closed
        # unanswered. The `transports` setting names what is served (default: tls only).
        return listener in tuple(self.options.get("transports", ("tls",)))

    @property
    def tenant(self) -> str:
        return str(self.options.get("tenant", "itron"))

    @classmethod
    def account(cls, username: str, password: str, options: dict[str, Any]) -> tuple[str, str]:
        # IT-JWT: the password is a token. The restricted account carries roles (IT-ROLES).
        claims: dict[str, Any] = {"sub": username, "exp": int(time.time()) + TOKEN_LIFETIME_S}
        if username == "restricted":
            claims["roles"] = list(options.get("restricted_roles", ["BUBBLE_UP_ALARM_CONSUMER"]))
        return username, make_jwt(claims, str(options.get("jwt_secret", DEFAULT_SECRET)))

    def check_connect(self, client: ClientInfo) -> Refusal | None:
        # IT-CLIENTID: 1 to 23 characters, whatever the protocol version allows.
        if not 1 <= len(client.client_id) <= 23:
            return Refusal(2, 0x85, "ClientId must be 1 to 23 characters")
        # IT-JWT: signature and expiry checked; (vague) refused with 5 / 0x87 unless set otherwise.
        token = (client.password or b"").decode("utf-8", "replace")
        claims = verify_jwt(token, str(self.options.get("jwt_secret", DEFAULT_SECRET)), time.time())
        if claims is None:
            code = int(self.options.get("bad_token_code", 5))
            return Refusal(code, 0x87 if code == 5 else 0x86, "invalid or expired token")
        roles = claims.get("roles")
        client.extra["roles"] = [r for r in roles if r in ROLES] if isinstance(roles, list) else None
        return None

    def _role_for(self, client: ClientInfo, topic_filter: str) -> tuple[str, int] | None:
        for role in client.extra.get("roles") or ():
            area, max_qos = ROLES[role]
            if _within(topic_filter, f"{self.tenant}/{area}"):
                return area, max_qos
        return None

    def authorize_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> Decision:
        # IT-ROLES / IT-SUBACK-DENY: a role opens its prefix; anything else is up to the ACL (0x80).
        if self._role_for(client, topic_filter) is not None:
            return Decision.ALLOW
        return super().authorize_subscribe(client, topic_filter, qos)

    def max_subscribe_qos(self, client: ClientInfo, topic_filter: str) -> int:
        found = self._role_for(client, topic_filter)
        return found[1] if found is not None else 2
