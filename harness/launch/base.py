"""Types shared by every launcher: the error, the standard accounts, the running-broker handle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.launch.process import BrokerProcess


class LaunchError(HarnessError):
    """A broker could not be started (or stopped). The message is one line that names the broker."""


class PortInUseError(LaunchError):
    """The broker lost the race for its port: another process bound it first. Launchers retry on it."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str = field(repr=False)  # reprs end up in logs and reports: keep secrets out


# Every harness-started broker gets these, so scenarios can rely on them. The brokers listen on
# loopback only and exist for the length of a test run, so fixed passwords are fine.
RESTRICTED_PREFIX = "acl/allowed"
STANDARD_ACCOUNTS: dict[str, Account] = {
    # may publish and subscribe to everything
    "default": Account("harness", "harness-secret"),
    # may publish and subscribe only below RESTRICTED_PREFIX; any other SUBSCRIBE is refused
    # (SUBACK 0x80 / 0x87) and any other PUBLISH is not delivered
    "restricted": Account("restricted", "restricted-secret"),
}

# What each standard account may publish and subscribe to, as one MQTT topic filter; every
# launcher turns this into its broker's own ACL format.
ACCOUNT_FILTERS: dict[str, str] = {"default": "#", "restricted": f"{RESTRICTED_PREFIX}/#"}


@dataclass
class RunningBroker:
    """A broker the harness started; reach it at `url` with one of `accounts`, then `stop()` it."""

    name: str
    host: str
    port: int
    version: str | None
    log_path: Path
    accounts: dict[str, Account]
    process: BrokerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        # No credentials in the URL: it ends up in reports, the accounts are passed separately.
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        """Stop the broker and everything it started; safe to call more than once."""
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
