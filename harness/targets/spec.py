"""What a target is: its name, where it is (a URL, endpoints, or a broker the harness launches), the
accounts a CONNECT uses, its profile, capabilities, settings and known deviations."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.clients import TlsOptions
from harness.errors import HarnessError


class TargetNotInstalled(HarnessError):
    """The target's broker is launched by the harness but its software is not installed here: the
    scenarios that need it are skipped with this message, they do not fail."""


@dataclass(frozen=True)
class Account:
    """The credentials a CONNECT carries; both None for an anonymous account (no User Name, no Password)."""

    username: str | None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def anonymous(self) -> bool:
        return self.username is None and self.password is None


# The `default` account of a reached target that names none (a URL without user info): scenarios then
# CONNECT without credentials, and those about authentication are skipped (no `auth` capability).
ANONYMOUS = Account(None, None)


@dataclass
class TargetSpec:
    name: str
    source: str  # where it was defined, for messages
    url: str | None = None
    launch: str | None = None
    profile: str = "strict"
    accounts: dict[str, Account] = field(default_factory=dict)
    capabilities: dict[str, bool] = field(default_factory=dict)
    deviations: dict[str, str] = field(default_factory=dict)
    intermittent: set[str] = field(default_factory=set)  # deviations the broker shows in some runs only (baselines)
    settings: dict[str, Any] = field(default_factory=dict)
    # Endpoints of one broker by name (tcp, tls, ws, wss, or any name) -> URL; `url` alone is one endpoint.
    endpoints: dict[str, str] = field(default_factory=dict)
    tls: dict[str, Any] = field(default_factory=dict)  # TLS_FIELDS: how TLS endpoints are verified
    endpoint_tls: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-endpoint TLS overrides
    defined_in: Path | None = None  # the targets file of the entry (None: --broker)

    def __post_init__(self) -> None:
        # A launched broker brings its own accounts. A reached one always has a default account,
        # anonymous unless given, and offers what its accounts allow unless `capabilities` says otherwise.
        if not self.launch:
            self.accounts.setdefault("default", ANONYMOUS)
            self.capabilities = {**account_capabilities(self.accounts), **self.capabilities}

    def tls_options(self, endpoint: str | None = None) -> TlsOptions:
        merged = {**self.tls, **self.endpoint_tls.get(endpoint or "", {})}
        return TlsOptions(**merged)



def account_capabilities(accounts: Mapping[str, Account]) -> dict[str, bool]:
    """What a reached target's accounts allow: `auth` (the default account logs in with credentials)
    and `restricted_account` (an account limited to acl/allowed/#, for the denial scenarios)."""
    return {"auth": not accounts["default"].anonymous, "restricted_account": "restricted" in accounts}
