"""Fixtures: one shared anonymous broker for protocol tests, and a factory for specially configured ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from broker_helpers import BrokerProcess, Client, running_broker

from harness.wire import Version


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerProcess]:
    """Anonymous, no ACL, spec limits: shared by the tests that need nothing special."""
    with running_broker({"auth": {"allow_anonymous": True}, "limits": {"topic_alias_maximum": 10}}) as proc:
        yield proc


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[Callable[..., Client]]:
    """Factory of raw clients on the shared broker, all closed at the end of the test."""
    made: list[Client] = []

    def make(version: Version = Version.V311, port: int | None = None) -> Client:
        c = Client(port or broker.port, version)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    """Raw clients for any port (brokers started by the test itself)."""
    made: list[Client] = []

    def make(port: int, version: Version = Version.V311) -> Client:
        c = Client(port, version)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def config(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"auth": {"allow_anonymous": True}}
    base.update(sections)
    return base
