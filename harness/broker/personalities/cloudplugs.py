"""CloudPlugs (shared seeds/cloudplugs-mqtt-api.txt; ids CP-* in harness/spec/vendors.tsv).

QoS 0 only, denials that say nothing, and enrolment of new things over MQTT itself. Logins are a
Plug-ID (`dev-...`) or an account e-mail (CP-AUTH): the launcher gives the harness accounts those
shapes (`account`). ClientIds are `HWID[/NAME]` and the device is the HWID (CP-CLIENTID). Data goes
on `PLUG_ID/data/CHANNEL` as JSON `{"id", "data", "at"}` (CP-DATA-TOPICS); additional properties are
set and read on `PLUG_ID/ag/prop/set|get`, answered on the same channel (CP-PROPS). Only `tcp` and
`tls` listeners serve (CP-TRANSPORTS).

Enrolment (CP-ENROLL) knows the production models of the setting `models` (MODEL: PASS); the
harness's `enrollment` account is the first of them, user name MODEL and password PASS
(`platform_accounts`). It is not a login: scenarios write it into the enrolment topic
`${user:enrollment}/thing/${password:enrollment}`, as a real target's `accounts.enrollment` gives its
production template's Plug-ID and enrolment code.

Topics outside the platform's (the generic suite's `mqc/...`) are relayed as plain MQTT, so the whole
suite can run against this personality; the real platform would drop them silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from typing import Any

from harness.broker.personality import ClientInfo, Decision, Personality, Refusal
from harness.broker.retained import Message

# CP-ENROLL: the reference broker's production models (MODEL -> PASS); a target may set `models`.
DEFAULT_MODELS = {"harness-model": "harness-pass"}
# CP-AUTH: a Plug-ID as the document shows it (dev-123456789012345678901234), or an e-mail address.
PLUG_ID = re.compile(r"dev-[A-Za-z0-9]+")
EMAIL = re.compile(r"[^@\s/]+@[^@\s/]+\.[^@\s/]+")
# CP-AUTH: which harness account logs in as an account e-mail; the others are devices (Plug-IDs).
EMAIL_ACCOUNTS = {"harness"}
_NOT_JSON = object()


def plug_id_for(name: str) -> str:
    """A stable Plug-ID of the document's shape (dev- and 24 characters) for a harness account."""
    return "dev-" + hashlib.sha256(name.encode()).hexdigest()[:24]


def data_payload(payload: bytes) -> bytes | None:
    """CP-DATA-TOPICS: the JSON object {"id", "data", "at"} a data PUBLISH carries, with `id` and `at`
    filled in when the device left them out (vague: the document gives the structure only); None when
    the payload is not a JSON object with `data` (the platform drops it, silently)."""
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(body, dict) or "data" not in body:
        return None
    if "id" in body and "at" in body:
        return payload
    body.setdefault("id", secrets.token_hex(12))
    body.setdefault("at", int(time.time() * 1000))
    return json.dumps(body, separators=(",", ":")).encode()


class CloudPlugsPersonality(Personality):
    name = "cloudplugs"

    def __init__(self, config: Any, broker: Any = None) -> None:
        super().__init__(config, broker)
        self.properties: dict[str, dict[str, Any]] = {}  # CP-PROPS: Plug-ID -> additional properties

    @classmethod
    def account(cls, username: str, password: str, options: dict[str, Any]) -> tuple[str, str]:
        # CP-AUTH: the default account logs in with its account e-mail, the others as devices by Plug-ID;
        # the password is the authorization code.
        if username in EMAIL_ACCOUNTS:
            return f"{username}@{options.get('email_domain', 'cloudplugs.example')}", password
        return plug_id_for(username), password

    @classmethod
    def platform_accounts(cls, options: dict[str, Any]) -> dict[str, tuple[str, str]]:
        # CP-ENROLL: the production model (its Plug-ID) and enrolment code scenarios enrol with.
        models = dict(options.get("models", DEFAULT_MODELS))
        if not models:
            return {}
        model, code = next(iter(models.items()))
        return {"enrollment": (str(model), str(code))}

    def serves(self, listener: str) -> bool:
        # CP-TRANSPORTS: plain MQTT and MQTT over TLS (the `transports` setting); no WebSocket.
        return listener in tuple(self.options.get("transports", ("tcp", "tls")))

    def check_connect(self, client: ClientInfo) -> Refusal | None:
        # CP-CLIENTID: HWID or HWID/NAME, the HWID not empty (vague: refused with `bad_clientid_code`).
        hwid, slash, name = client.client_id.partition("/")
        if not hwid or (slash and (not name or "/" in name)):
            code = int(self.options.get("bad_clientid_code", 2))
            return Refusal(code, 0x85 if code == 2 else 0x80, "ClientId must be HWID or HWID/NAME")
        # CP-AUTH: the user name is a Plug-ID or an account e-mail (empty: enrolment, CP-ENROLL).
        if client.username and not (PLUG_ID.fullmatch(client.username) or EMAIL.fullmatch(client.username)):
            return Refusal(4, 0x86, "user name is neither a Plug-ID nor an e-mail address")
        return None

    def client_key(self, client_id: str, version: int) -> str:
        # CP-CLIENTID: the device is its HWID; HWID/NAME only names it, so HWID/a and HWID/b are one client.
        return client_id.partition("/")[0]

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

    def on_publish(self, client: ClientInfo, message: Message) -> Message | None:
        levels = message.topic.split("/")
        if len(levels) == 4 and levels[1:3] == ["ag", "prop"] and levels[3] in ("set", "get"):
            self._properties(client, message, levels[0], levels[3])
            return None  # CP-PROPS: a request to the platform, not relayed
        if len(levels) >= 3 and levels[1] == "data" and levels[0]:
            payload = data_payload(message.payload)  # CP-DATA-TOPICS
            if payload is None:
                return None
            if payload is not message.payload:
                return Message(message.topic, payload, message.qos, message.retain, message.properties, message.origin)
        return message

    def _properties(self, client: ClientInfo, message: Message, plug: str, verb: str) -> None:
        """CP-PROPS: `set` merges a JSON object, `get` answers all (empty payload) or the named ones (a
        JSON array); the answer goes to the client on the same channel (vague: `{"ok": true}` for a
        set, `{"err", "msg"}` on a bad request, as enrolment answers)."""
        try:
            body = json.loads(message.payload.decode("utf-8")) if message.payload else None
        except (UnicodeDecodeError, ValueError):
            body = _NOT_JSON
        stored = self.properties.setdefault(plug, {})
        answer: Any
        if verb == "set" and isinstance(body, dict):
            stored.update(body)
            answer = {"ok": True}
        elif verb == "get" and body is None:
            answer = dict(stored)
        elif verb == "get" and isinstance(body, list) and all(isinstance(n, str) for n in body):
            answer = {n: stored[n] for n in body if n in stored}
        else:
            answer = {"err": 400, "msg": f"{verb}: expected " + ("a JSON object" if verb == "set" else "nothing or a JSON array of names")}
        asyncio.get_running_loop().call_soon(self._reply, client, message.topic, answer)

    def _reply(self, client: ClientInfo, topic: str, answer: Any) -> None:
        if self.broker is None:
            return
        connection = self.broker.connections.get(self.client_key(client.client_id, client.version))
        if connection is not None and connection.client is client:
            connection.send_publish(Message(topic, json.dumps(answer).encode(), 0, False), 0, False, None, False, None)
            self.broker.flush()

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
