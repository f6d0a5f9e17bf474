"""Application messages as the broker holds them, and the retained-message store.

A `Message` is immutable once published: every subscriber's copy shares it, and the encoded bytes
of a delivery variant are cached on it, so fanning one message out to a hundred subscribers
encodes it once, not a hundred times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from harness.broker.topics import has_wildcard, matches

# 5.0 PUBLISH properties the server forwards unchanged (MQTT-3.3.2-4, -15..-20). Topic Alias is per
# connection and Subscription Identifier per subscriber, so neither is kept on the message;
# Message Expiry is rewritten on every delivery (MQTT-3.3.2-6).
FORWARDED = ("payload_format_indicator", "content_type", "response_topic", "correlation_data", "user_property")


class Message:
    __slots__ = ("topic", "payload", "qos", "retain", "properties", "origin", "expires_at", "encoded")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool = False,
                 properties: dict[str, Any] | None = None, origin: str | None = None,
                 expiry_interval: int | None = None) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties or None  # forwarded 5.0 properties, None when there are none
        self.origin = origin  # publisher's ClientId, for No Local (None: the broker itself)
        self.expires_at = time.monotonic() + expiry_interval if expiry_interval is not None else None
        # (version, qos, retain, flags...) -> bytes; filled lazily by the connection layer
        self.encoded: dict[Any, bytes] | None = None

    def remaining_expiry(self, now: float | None = None) -> int | None:
        """Seconds left, rounded up so a message is never forwarded with 0 while still alive."""
        if self.expires_at is None:
            return None
        left = self.expires_at - (time.monotonic() if now is None else now)
        return max(0, int(left + 0.999))

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.monotonic() if now is None else now) >= self.expires_at

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {len(self.payload)}B, qos={self.qos}, retain={self.retain})"


class RetainedStore:
    """The last retained message per topic (MQTT-3.3.1-5). Not session state: survives sessions."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._by_topic: dict[str, Message] = {}

    def __len__(self) -> int:
        return len(self._by_topic)

    def store(self, message: Message) -> bool:
        """Replace (or, for an empty payload, clear) the topic's retained message.

        Returns False when a new topic was refused because the store is full; MQTT-3.3.1-7 lets a
        server discard retained messages, and an unbounded store would let one client exhaust memory.
        """
        if not message.payload:
            self._by_topic.pop(message.topic, None)  # MQTT-3.3.1-6/-7: cleared, never stored
            return True
        if message.topic not in self._by_topic and len(self._by_topic) >= self.limit:
            self._expire()
            if len(self._by_topic) >= self.limit:
                return False
        self._by_topic[message.topic] = message
        return True

    def clear(self, topic: str) -> None:
        self._by_topic.pop(topic, None)

    def get(self, topic: str) -> Message | None:
        return self._by_topic.get(topic)

    def matching(self, topic_filter: str) -> Iterator[Message]:
        """Live retained messages whose topic matches the filter; expired ones are dropped here."""
        now = time.monotonic()
        if not has_wildcard(topic_filter):
            found = self._by_topic.get(topic_filter)
            if found is not None:
                if found.expired(now):
                    del self._by_topic[topic_filter]
                else:
                    yield found
            return
        dead = []
        for topic, message in list(self._by_topic.items()):
            if matches(topic_filter, topic):
                if message.expired(now):
                    dead.append(topic)
                else:
                    yield message
        for topic in dead:
            self._by_topic.pop(topic, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for topic in [t for t, m in self._by_topic.items() if m.expired(now)]:
            del self._by_topic[topic]
