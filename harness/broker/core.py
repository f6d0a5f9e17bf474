"""The broker's shared state and routing, independent of sockets: sessions, subscriptions, retained
messages, wills and session expiry.

`Broker` is driven by connections (connection.py) and by timers it schedules through the
`call_later` it is given, so tests can run it with a fake clock and fake sinks. Output is written
by sinks into per-connection buffers; `flush()` pushes every buffer that got data, once per event
(one `write` syscall per connection per batch, however many messages the batch fanned out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from harness.broker.auth import Acl, Authenticator
from harness.broker.config import BrokerConfig
from harness.broker.personalities import PERSONALITIES
from harness.broker.personality import Personality
from harness.broker.retained import Message, RetainedStore
from harness.broker.sessions import Session
from harness.broker.topics import Subscription, SubscriptionIndex

log = logging.getLogger("harness.broker")

NEVER = None  # session expiry: the session never ends on its own (3.x CleanSession 0, 5.0 0xFFFFFFFF)


class Broker:
    def __init__(self, config: BrokerConfig, call_later: Callable[[float, Callable[[], None]], Any]) -> None:
        self.config = config
        self.call_later = call_later
        self.personality: Personality = PERSONALITIES[config.personality](config, self)
        self.limits = self.personality.adjust_limits(config.limits)
        self.authenticator = Authenticator(config.auth)
        self.acl = Acl(config.acl)
        self.index = SubscriptionIndex()
        self.retained = RetainedStore(self.limits.max_retained_messages)
        self.sessions: dict[str, Session] = {}
        self.connections: dict[str, Any] = {}  # session key -> live connection
        self.dirty: list[Any] = []  # connections with unflushed output
        self.sockets = 0  # open network connections, CONNECT received or not
        self.stats = {"received": 0, "sent": 0, "dropped": 0}

    # -- output ----------------------------------------------------------------------------------

    def flush(self) -> None:
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for conn in dirty:
                conn.flush()

    # -- sessions --------------------------------------------------------------------------------

    def take_session(self, key: str, client_id: str, clean: bool) -> tuple[Session, bool]:
        """The session for a new connection, and whether an old one was resumed (Session Present)."""
        session = self.sessions.get(key)
        if session is not None:
            self._cancel_timers(session, will=False)
            if clean:
                # The old session ends now, so a will still waiting out its delay goes out now.
                self.end_session(session, publish_will=True)
                session = None
            elif session.will is not None:
                # Reconnected within the Will Delay: the will is not sent (5.0 MQTT-3.1.3-9).
                self._cancel_will(session)
        if session is None:
            session = Session(client_id, key, self.limits.max_queued_messages)
            self.sessions[key] = session
            return session, False
        session.client_id = client_id
        return session, True

    def session_capacity_left(self, key: str) -> bool:
        return key in self.sessions or len(self.sessions) < self.limits.max_sessions

    def end_session(self, session: Session, publish_will: bool = True) -> None:
        """Discard a session and its subscriptions (its will goes out first if still pending)."""
        self._cancel_timers(session, will=False)
        if session.will is not None:
            if publish_will:
                self.publish_will(session)
            else:
                self._cancel_will(session)
        for sub in session.subscriptions.values():
            self.index.remove(session.key, sub)
        session.clear()
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]

    def connection_closed(self, session: Session, will: bool) -> None:
        """The session's connection is gone: schedule its will and its expiry."""
        session.detach()
        if self.connections.get(session.key) is not None and self.connections[session.key].session is session:
            del self.connections[session.key]
        if session.will is not None:
            if not will:
                self._cancel_will(session)
            elif session.will_delay > 0 and session.expiry != 0:
                # 5.0 Will Delay: published when the delay or the session ends, whichever is first.
                delay = session.will_delay if session.expiry is None else min(session.will_delay, session.expiry)
                session.will_timer = self.call_later(delay, lambda: self._will_timer(session))
            else:
                self.publish_will(session)
        if session.expiry == 0:
            self.end_session(session)
        elif session.expiry is not None:
            session.expiry_timer = self.call_later(session.expiry, lambda: self._expire(session))

    def _will_timer(self, session: Session) -> None:
        session.will_timer = None
        if session.will is not None and not session.connected:
            self.publish_will(session)
            self.flush()

    def _expire(self, session: Session) -> None:
        session.expiry_timer = None
        if not session.connected and self.sessions.get(session.key) is session:
            log.debug("session %s expired", session.client_id)
            self.end_session(session)
            self.flush()

    def _cancel_will(self, session: Session) -> None:
        session.will = None
        if session.will_timer is not None:
            session.will_timer.cancel()
            session.will_timer = None

    def _cancel_timers(self, session: Session, will: bool) -> None:
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        if will:
            self._cancel_will(session)

    def publish_will(self, session: Session) -> None:
        message = session.will
        self._cancel_will(session)
        if message is None:
            return
        if message.expires_at is not None:
            # The will's Message Expiry Interval counts from its publication (5.0 §3.1.3.2.4); the
            # interval was parked in expires_at when the will was stored.
            message.expires_at += time.monotonic()
        log.debug("publishing will of %s on %s", session.client_id, message.topic)
        self.publish(message)

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, session: Session, sub: Subscription) -> bool:
        """Add or replace; True if the same filter was already subscribed (MQTT-3.8.4-3)."""
        old = session.subscriptions.get(sub.filter)
        if old is not None:
            self.index.remove(session.key, old)
        session.subscriptions[sub.filter] = sub
        self.index.add(session.key, sub)
        return old is not None

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        sub = session.subscriptions.pop(topic_filter, None)  # exact string match: MQTT-3.10.4-1
        if sub is None:
            return False
        self.index.remove(session.key, sub)
        return True

    def send_retained(self, session: Session, sub: Subscription) -> None:
        """Retained messages for a new subscription, with RETAIN 1 (MQTT-3.3.1-6/-8)."""
        sub_ids = (sub.identifier,) if sub.identifier is not None else None
        for message in self.retained.matching(sub.topic_filter):
            if sub.no_local and message.origin == session.client_id:
                continue
            session.deliver(message, min(message.qos, sub.qos), True, sub_ids)

    # -- routing ---------------------------------------------------------------------------------

    def publish(self, message: Message, retain_store: bool = True) -> int:
        """Store (if retained) and route one message; the number of sessions it was given to."""
        if message.retain and retain_store and self.limits.retain_available:
            self.retained.store(message)
        return self.route(message)

    def route(self, message: Message) -> int:
        subs, groups = self.index.match(message.topic)
        if not subs and not groups:
            return 0
        origin = message.origin
        count = 0
        if len(subs) == 1:
            sub = subs[0]
            if not (sub.no_local and origin == sub.session.client_id):
                qos = message.qos if message.qos < sub.qos else sub.qos
                retain = message.retain and sub.retain_as_published
                ids = (sub.identifier,) if sub.identifier is not None else None
                sub.session.deliver(message, qos, retain, ids)
                count = 1
        elif subs:
            count = self._route_overlapping(message, subs)
        for group in groups:
            member = group.pick()
            if member is not None:
                qos = message.qos if message.qos < member.qos else member.qos
                ids = (member.identifier,) if member.identifier is not None else None
                member.session.deliver(message, qos, message.retain and member.retain_as_published, ids)
                count += 1
        return count

    def _route_overlapping(self, message: Message, subs: list[Subscription]) -> int:
        """One copy per session with the highest QoS and every identifier (MQTT-3.3.5-1, 3.3.4-2..-4)."""
        per_session: dict[int, list[Any]] = {}
        origin = message.origin
        for sub in subs:
            session = sub.session
            if sub.no_local and origin == session.client_id:
                continue
            qos = message.qos if message.qos < sub.qos else sub.qos
            retain = message.retain and sub.retain_as_published
            entry = per_session.get(id(session))
            if entry is None:
                per_session[id(session)] = [session, qos, retain, [sub.identifier] if sub.identifier else []]
            else:
                if qos > entry[1]:
                    entry[1] = qos
                entry[2] = entry[2] or retain
                if sub.identifier:
                    entry[3].append(sub.identifier)
        for session, qos, retain, ids in per_session.values():
            session.deliver(message, qos, retain, tuple(ids) if ids else None)
        return len(per_session)
