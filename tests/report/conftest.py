"""Fixtures for the report tests: a harness-launched reference broker with secrets worth leaking."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from report_helpers import JWT, RESTRICTED_PASSWORD

# pytester's in-process runs drop modules first imported inside them; cryptography (behind the
# harness's TLS certificates) cannot be imported twice in one process, so import it up front.
with contextlib.suppress(ImportError):
    import harness.certs  # noqa: F401


@pytest.fixture(scope="session")
def reference_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The bundled reference broker with a JWT as the default account's password."""
    launch = pytest.importorskip("harness.launch")
    accounts = {"default": launch.Account("harness", JWT), "restricted": launch.Account("restricted", RESTRICTED_PASSWORD)}
    broker = launch.launch("reference", tmp_path_factory.mktemp("reference"), accounts=accounts)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def reference_url(reference_broker: Any) -> str:
    return f"mqtt://{reference_broker.host}:{reference_broker.port}"


@pytest.fixture
def broker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_TEST_USER", "harness")
    monkeypatch.setenv("MQTT_TEST_PASSWORD", JWT)
    monkeypatch.setenv("MQTT_TEST_RO_PASSWORD", RESTRICTED_PASSWORD)


@pytest.fixture(scope="session")
def login_url(reference_broker: Any) -> str:
    """The reference broker's URL with the default account in it (the password is URL-encoded)."""
    from urllib.parse import quote

    return f"mqtt://harness:{quote(JWT, safe='')}@{reference_broker.host}:{reference_broker.port}"
