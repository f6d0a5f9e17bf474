"""A target for the harness's own commands and benchmarks (probe, fuzz): a URL or a targets entry,
resolved to an address and the default account, with a launched broker stopped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.clients.transport import Address
from harness.targets import (
    Account,
    TargetSession,
    parse_endpoint_url,
    redact_url,
    target_from_file,
    user_targets_file,
)
from harness.targets.profiles import load_profile


@contextlib.contextmanager
def started(name: str, targets_file: str | Path | None = None) -> Iterator[TargetSession]:
    """The targets entry `name` (of the built-in targets and `targets_file`), started if it is launched
    (TargetNotInstalled, HarnessError), and stopped when the block ends, however it ends."""
    spec = target_from_file(Path(targets_file) if targets_file else None, name)
    session = TargetSession(spec, load_profile(spec.profile))
    try:
        session.endpoint()
        yield session
    finally:
        session.stop()


def default_account(endpoint: Any) -> Account:
    """The credentials of an endpoint's `default` account (anonymous when it has none)."""
    default = endpoint.accounts.get("default")
    return Account(getattr(default, "username", None), getattr(default, "password", None))


@contextlib.contextmanager
def reached(url: str | None, target: str | None, targets_file: str | None, source: str) -> Iterator[tuple[Address, Account, str]]:
    """(address, default account, URL to show) of `url` or of the targets entry `target` (the targets
    file: `targets_file`, else ./targets.yaml when there is one). `source` names the URL in errors."""
    if url:
        address, account = parse_endpoint_url(url, source)
        yield address, account or Account(None, None), redact_url(url)
        return
    assert target is not None
    with started(target, user_targets_file([Path.cwd()], targets_file)) as session:
        endpoint = session.endpoint()
        yield endpoint.address, default_account(endpoint), redact_url(endpoint.address.url)
