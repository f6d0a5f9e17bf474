"""Topic names, topic filters, and the subscription index (a trie over topic levels).

Pure functions and plain objects, no I/O: what the broker matches is testable without sockets.

Matching follows MQTT 4.7: `+` fills one level, `#` the rest (including the parent level itself:
`a/#` matches `a`), and a filter starting with a wildcard never matches a topic starting with `$`
(MQTT-4.7.2-1). Strings are compared exactly, never normalised (MQTT-4.7.3-4).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.wire import Version
from harness.wire import filter_problem as wire_filter_problem

SHARE_PREFIX = "$share/"


def topic_problem(topic: str) -> str | None:
    """Why `topic` cannot be a PUBLISH topic name, or None (MQTT-4.7.0-1, 4.7.3-1/-2/-3)."""
    if not topic:
        return "empty topic name"
    if "+" in topic or "#" in topic:
        return "wildcard in topic name"
    if "\x00" in topic:
        return "U+0000 in topic name"
    if len(topic) > 16383 and len(topic.encode("utf-8")) > 65535:
        return "topic name longer than 65535 bytes"
    return None


def filter_problem(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid (non-shared) topic filter, or None (MQTT-4.7.1-1/-2)."""
    if "\x00" in topic_filter:
        return "U+0000 in topic filter"
    if len(topic_filter) > 16383 and len(topic_filter.encode("utf-8")) > 65535:
        return "topic filter longer than 65535 bytes"
    # The wildcard rules are the codec's; a plain filter follows the same ones in every version.
    found = wire_filter_problem(topic_filter, Version.V311)
    return found[1] if found else None


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """(share name, filter) for `$share/NAME/FILTER`, None for a plain filter.

    Raises ValueError for a `$share/` filter that breaks MQTT-4.8.2-1/-2.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    found = wire_filter_problem(topic_filter, Version.V5)  # the share-name rules, MQTT-4.8.2-1/-2
    if found:
        raise ValueError(found[1])
    name, _, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    problem = filter_problem(inner)
    if problem:
        raise ValueError(problem)
    return name, inner


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def matches(topic_filter: str, topic: str, dollar_rule: bool = True) -> bool:
    """Does `topic_filter` match the topic name `topic`? (`dollar_rule=False` for ACL patterns.)"""
    if topic_filter == topic:
        return True
    if dollar_rule and topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f = topic_filter.split("/")
    t = topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(f) == len(t)


def filter_covers(pattern: str, topic_filter: str) -> bool:
    """Does every topic `topic_filter` can match also match `pattern`? (ACL check for SUBSCRIBE.)"""
    p = pattern.split("/")
    f = topic_filter.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(f):
            return False
        if f[i] == "#":
            return False  # the filter reaches deeper than this pattern allows
        if level == "+":
            continue
        if level != f[i]:
            return False
    return len(p) == len(f)


class Subscription:
    """One subscription of one session. `topic_filter` is without any `$share/NAME/` prefix."""

    __slots__ = ("session", "filter", "topic_filter", "qos", "no_local", "retain_as_published",
                 "retain_handling", "identifier", "share")

    def __init__(self, session: Any, filter: str, topic_filter: str, qos: int, *, no_local: bool = False,
                 retain_as_published: bool = False, retain_handling: int = 0, identifier: int | None = None,
                 share: str | None = None) -> None:
        self.session = session
        self.filter = filter  # as the client wrote it: the key for UNSUBSCRIBE (MQTT-3.10.4-1)
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.identifier = identifier
        self.share = share

    def __repr__(self) -> str:
        return f"Subscription({self.filter!r}, qos={self.qos}, id={self.identifier})"


class ShareGroup:
    """Members of one `$share/NAME/FILTER`; each message goes to one of them, round robin."""

    __slots__ = ("name", "topic_filter", "members", "_next")

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.members: dict[str, Subscription] = {}  # client key -> subscription
        self._next = 0

    def pick(self) -> Subscription | None:
        """The next member, preferring connected sessions (an offline one only queues)."""
        members = list(self.members.values())
        if not members:
            return None
        n = len(members)
        for k in range(n):
            sub = members[(self._next + k) % n]
            if getattr(sub.session, "connected", True):
                self._next = (self._next + k + 1) % n
                return sub
        sub = members[self._next % n]
        self._next = (self._next + 1) % n
        return sub


class _Node:
    __slots__ = ("children", "subs", "groups")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subs: dict[str, Subscription] = {}
        self.groups: dict[str, ShareGroup] = {}


MatchResult = tuple[list[Subscription], list[ShareGroup]]


class SubscriptionIndex:
    """Every subscription of every session, found by topic in time proportional to the topic depth.

    Results are cached per topic name until the next subscribe or unsubscribe, since real traffic
    repeats a small set of topics far more often than subscriptions change.
    """

    CACHE_LIMIT = 8192

    def __init__(self) -> None:
        self._root = _Node()
        self._cache: dict[str, MatchResult] = {}
        self.count = 0

    def _node(self, topic_filter: str, create: bool) -> _Node | None:
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                if not create:
                    return None
                child = node.children[level] = _Node()
            node = child
        return node

    def add(self, key: str, sub: Subscription) -> bool:
        """Add or replace; True if it replaced an existing subscription with the same filter."""
        node = self._node(sub.topic_filter, True)
        assert node is not None
        self._cache.clear()
        if sub.share is None:
            existed = key in node.subs
            node.subs[key] = sub
        else:
            group = node.groups.get(sub.share)
            if group is None:
                group = node.groups[sub.share] = ShareGroup(sub.share, sub.topic_filter)
            existed = key in group.members
            group.members[key] = sub
        if not existed:
            self.count += 1
        return existed

    def remove(self, key: str, sub: Subscription) -> bool:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in sub.topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if sub.share is None:
            if node.subs.get(key) is not sub:
                return False
            del node.subs[key]
        else:
            group = node.groups.get(sub.share)
            if group is None or group.members.get(key) is not sub:
                return False
            del group.members[key]
            if not group.members:
                del node.groups[sub.share]
        self.count -= 1
        self._cache.clear()
        # Prune empty branches so a client cycling through unique filters leaves nothing behind.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.subs or child.groups:
                break
            del parent.children[level]
        return True

    def match(self, topic: str) -> MatchResult:
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        subs: list[Subscription] = []
        groups: list[ShareGroup] = []
        levels = topic.split("/")
        depth = len(levels)
        dollar = topic.startswith("$")
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == depth:
                if node.subs:
                    subs.extend(node.subs.values())
                if node.groups:
                    groups.extend(node.groups.values())
                hash_node = node.children.get("#")
                if hash_node is not None:  # "a/#" also matches "a"
                    subs.extend(hash_node.subs.values())
                    groups.extend(hash_node.groups.values())
                continue
            children = node.children
            child = children.get(levels[i])
            if child is not None:
                stack.append((child, i + 1))
            if i == 0 and dollar:
                continue  # MQTT-4.7.2-1: no wildcard at the first level matches a $-topic
            plus = children.get("+")
            if plus is not None:
                stack.append((plus, i + 1))
            hash_node = children.get("#")
            if hash_node is not None:
                subs.extend(hash_node.subs.values())
                groups.extend(hash_node.groups.values())
        result = (subs, groups)
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def __iter__(self) -> Iterator[Subscription]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield from node.subs.values()
            for group in node.groups.values():
                yield from group.members.values()
            stack.extend(node.children.values())
