"""Types shared by every launcher: the error, the standard accounts, the running-broker handle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.certs import Pki
    from harness.launch.process import BrokerProcess


class LaunchError(HarnessError):
    """A broker could not be started (or stopped). The message is one line that names the broker."""


class BrokerNotInstalled(LaunchError):
    """The broker's software is not on this machine (binary, package or module missing).

    Not a failure of the broker nor of the harness: the plugin skips the target's scenarios with this
    message as the reason. The message is one line naming what is missing and how to install it.
    """


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


# Listeners a launcher can open, by name -> the transport a client speaks to it. Besides one per
# transport: `mtls` requires a client certificate signed by the run's CA; `tls-expired` and
# `tls-not-yet-valid` serve a server certificate outside its validity, for the TLS failure scenarios.
LISTENER_KINDS: dict[str, str] = {
    "tcp": "tcp", "tls": "tls", "ws": "ws", "wss": "wss",
    "mtls": "tls", "tls-expired": "tls", "tls-not-yet-valid": "tls",
}
ALL_LISTENERS: tuple[str, ...] = tuple(LISTENER_KINDS)
WS_PATH = "/mqtt"


@dataclass(frozen=True)
class ServedEndpoint:
    """One listener of a launched broker."""

    name: str  # a key of LISTENER_KINDS
    transport: str  # tcp, tls, ws or wss
    host: str
    port: int
    path: str = ""  # WebSocket path (ws, wss)

    @property
    def url(self) -> str:
        scheme = {"tcp": "mqtt", "tls": "mqtts", "ws": "ws", "wss": "wss"}[self.transport]
        return f"{scheme}://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class LaunchRequest:
    """What `harness.launch.launch()` hands every launcher, already checked: the options all brokers
    share. A launcher's own options (mosquitto's `anonymous`, the reference broker's `personality`)
    come as keywords beside it."""

    workdir: Path  # absolute and created: this broker's files alone
    timeout: float  # seconds start-up may take (the launcher's START_TIMEOUT unless the caller set one)
    port: int | None = None  # the tcp listener's port; None: a free one
    accounts: Mapping[str, Account] = field(default_factory=lambda: dict(STANDARD_ACCOUNTS))
    transports: tuple[str, ...] = ("tcp",)  # listener names, among the launcher's LISTENERS, tcp included


def check_listeners(
    name: str, listeners: tuple[str, ...] | list[str], offered: tuple[str, ...] | None = None
) -> None:
    """Refuse listener kinds the harness does not know, or (given `offered`) this broker cannot serve."""
    unknown = [kind for kind in listeners if kind not in LISTENER_KINDS]
    if unknown:
        raise LaunchError(f"{name}: unknown listener(s) {', '.join(unknown)} (known: {', '.join(LISTENER_KINDS)})")
    unsupported = [kind for kind in listeners if offered is not None and kind not in offered]
    if unsupported:
        raise LaunchError(f"{name}: no {', '.join(unsupported)} listener (it offers {', '.join(offered or ())})")
    if "tcp" not in listeners:
        raise LaunchError(f"{name}: the tcp listener is always needed (it is how readiness is checked)")


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
    # Every listener by name (always at least "tcp" = host:port); TLS ones use the certificates in `pki`.
    endpoints: dict[str, ServedEndpoint] = field(default_factory=dict)
    pki: Pki | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.endpoints.setdefault("tcp", ServedEndpoint("tcp", "tcp", self.host, self.port))

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the TLS listeners' certificates (generated for this run)."""
        return self.pki.ca if self.pki is not None else None

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
