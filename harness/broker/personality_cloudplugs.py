"""CloudPlugs (shared seeds/cloudplugs-mqtt-api.txt; ids CP-* in harness/spec/vendors.tsv).

QoS 0 only, denials that say nothing, and enrolment of new things over MQTT itself.
"""

from __future__ import annotations

import asyncio
import json
import secrets

from harness.broker.personalities import PERSONALITIES, ClientInfo, Decision, Personality
from harness.broker.retained import Message

# CP-ENROLL: the reference broker's production models (MODEL -> PASS); a target may set `models`.
DEFAULT_MODELS = {"harness-model": "harness-pass"}


class CloudPlugsPersonality(Personality):
    name = "cloudplugs"

    @property
    def idle_limit(self) -> float | None:  # type: ignore[override]
        # CP-KEEPALIVE: dropped after 5 minutes without traffic whatever Keep Alive says (a setting).
        return float(self.options.get("idle_timeout", 300))

    def max_subscribe_qos(self, client: ClientInfo, topic_filter: str) -> int:
        # CP-QOS0: every subscription is granted QoS 0, so every delivery is QoS 0 as well.
        return 0

    def authenticated(self, client: ClientInfo) -> bool:
        # CP-ENROLL: a thing enrols with an empty user name and password; it may then only enrol.
        if client.username == "" and not client.password:
            client.extra["enrolling"] = True
            return True
        return False

    def authorize_publish(self, client: ClientInfo, topic: str, qos: int, retain: bool) -> Decision:
        if client.extra.get("enrolling"):
            return Decision.SILENT
        # CP-SILENT-DENY: a denied PUBLISH is acknowledged as usual and dropped, no error.
        decision = super().authorize_publish(client, topic, qos, retain)
        return Decision.SILENT if decision is Decision.DENY else decision

    def authorize_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> Decision:
        if client.extra.get("enrolling"):
            return self._enrol(client, topic_filter)
        # CP-SILENT-DENY: a denied SUBSCRIBE still gets a granting SUBACK; nothing is delivered.
        decision = super().authorize_subscribe(client, topic_filter, qos)
        return Decision.SILENT if decision is Decision.DENY else decision

    def _enrol(self, client: ClientInfo, topic_filter: str) -> Decision:
        """CP-ENROLL: `MODEL/thing/PASS` or `MODEL/ctrl/THING_HWID/PASS`; the answer is published
        on that topic once the SUBACK is out, and a failure closes the connection."""
        parts = topic_filter.split("/")
        models = dict(self.options.get("models", DEFAULT_MODELS))
        hwid = client.client_id.split("/", 1)[0]
        shape_ok = (len(parts) == 3 and parts[1] == "thing") or (len(parts) == 4 and parts[1] == "ctrl")
        if not shape_ok or "+" in topic_filter or "#" in topic_filter:
            return Decision.SILENT
        if models.get(parts[0]) == parts[-1] and hwid:
            answer = {"id": f"dev-{hwid}", "auth": secrets.token_hex(8)}
            failed = False
        else:
            answer = {"err": 401, "msg": "enrolment refused: unknown model or wrong password"}
            failed = True
        asyncio.get_running_loop().call_soon(self._answer, client, topic_filter, answer, failed)
        return Decision.ALLOW

    def _answer(self, client: ClientInfo, topic: str, answer: dict[str, object], failed: bool) -> None:
        if self.broker is None:
            return
        self.broker.publish(Message(topic, json.dumps(answer).encode(), 0, False), retain_store=False)
        self.broker.flush()  # outside a packet handler nothing else pushes the buffers out
        if failed:
            connection = self.broker.connections.get(self.client_key(client.client_id, client.version))
            if connection is not None and connection.client is client:
                connection._close(will=False, reason="enrolment refused")


PERSONALITIES[CloudPlugsPersonality.name] = CloudPlugsPersonality
