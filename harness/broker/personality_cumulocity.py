"""Cumulocity IoT (shared seeds/cumulocity-iot-mqtt.txt; ids C8Y-* in harness/spec/vendors.tsv).

Only the behaviours that deviate from the spec are here; the rest is the strict Personality.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.broker.config import Limits
from harness.broker.personalities import PERSONALITIES, ClientInfo, Personality, Refusal

# CONNACK return codes (3.x) and their 5.0 counterparts.
UNACCEPTABLE_VERSION = 1
BAD_CREDENTIALS, BAD_CREDENTIALS_5 = 4, 0x86
NOT_AUTHORIZED, NOT_AUTHORIZED_5 = 5, 0x87


def device_identifier(client_id: str) -> str:
    """C8Y-CLIENTID-FORMAT: `[connectionType:]deviceIdentifier[:defaultTemplate]` -> deviceIdentifier."""
    parts = client_id.split(":")
    return parts[1] if len(parts) >= 2 else client_id


class CumulocityPersonality(Personality):
    name = "cumulocity"

    @classmethod
    def account(cls, username: str, password: str, options: dict[str, Any]) -> tuple[str, str]:
        # C8Y-AUTH-FORMAT: every user belongs to a tenant and logs in as `tenant/user`.
        return f"{options.get('tenant', 't100')}/{username}", password

    def adjust_limits(self, limits: Limits) -> Limits:
        # C8Y-PAYLOAD-MAX (vague: the connection is closed): 16184 bytes, header included.
        return replace(limits, max_packet_size=int(self.options.get("max_packet_size", 16184)))

    def refuse_version(self, version: int) -> Refusal | None:
        # C8Y-VERSION: 3.1 (level 3) and 3.1.1 (level 4) only; 5.0 is unknown to the platform, so
        # the refusal is the 3.1.1 return code 1 (connection.py answers it in 3.1.1 form).
        if version in (3, 4):
            return None
        return Refusal(UNACCEPTABLE_VERSION, UNACCEPTABLE_VERSION, "only MQTT 3.1 and 3.1.1 are supported")

    def before_connect(self, packet_type: int) -> Refusal | None:
        # C8Y-AUTH-FIRST: any packet before a successful CONNECT is answered with CONNACK 5, then close.
        return Refusal(NOT_AUTHORIZED, NOT_AUTHORIZED_5, "CONNECT first")

    def client_key(self, client_id: str, version: int) -> str:
        # C8Y-CLIENTID-FORMAT: X, d:X and d:X:tpl are one device, so they take each other over.
        return device_identifier(client_id)

    def check_connect(self, client: ClientInfo) -> Refusal | None:
        # C8Y-CLIENTID-31: the platform answers 5 where MQTT 3.1 says 2 (identifier rejected).
        if client.version == 3 and len(client.client_id) >= 24:
            return Refusal(NOT_AUTHORIZED, NOT_AUTHORIZED_5, "3.1 ClientId of 24 characters or more")
        # C8Y-AUTH-FORMAT: a user name without its tenant cannot be right: bad credentials.
        if client.username is not None and "/" not in client.username:
            return Refusal(BAD_CREDENTIALS, BAD_CREDENTIALS_5, "user name must be tenant/user")
        # C8Y-AUTH-FORMAT (vague): an empty password is not answered with 4; we read it as 5.
        if client.username is not None and not client.password:
            code = int(self.options.get("empty_password_code", NOT_AUTHORIZED))
            return Refusal(code, NOT_AUTHORIZED_5 if code == NOT_AUTHORIZED else BAD_CREDENTIALS_5, "empty password")
        return None


PERSONALITIES[CumulocityPersonality.name] = CumulocityPersonality


class CumulocityLegacyPersonality(CumulocityPersonality):
    """The legacy Cumulocity document (shared seeds/cumulocity-mqtt-legacy.md; ids C8YL-*)."""

    name = "cumulocity-legacy"

    def refuse_version(self, version: int) -> Refusal | None:
        # C8YL-VERSION: MQTT 3.1.1 only; 3.1 and 5.0 get the 3.1.1 return code 1.
        if version == 4:
            return None
        return Refusal(UNACCEPTABLE_VERSION, UNACCEPTABLE_VERSION, "only MQTT 3.1.1 is supported")

    def on_connected(self, client: ClientInfo) -> None:
        # C8YL-NO-WILL (vague): the will is accepted at CONNECT and never published.
        if self.broker is None:
            return
        connection = self.broker.connections.get(self.client_key(client.client_id, client.version))
        if connection is not None and connection.client is client and connection.session is not None:
            connection.session.will = None


PERSONALITIES[CumulocityLegacyPersonality.name] = CumulocityLegacyPersonality
