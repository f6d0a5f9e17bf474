"""The one way the harness starts and stops a broker process.

    broker = launch("mosquitto", tmp_path)      # free loopback port, standard accounts
    try:
        ...connect to broker.host, broker.port with broker.accounts["default"]...
    finally:
        broker.stop()

Every launched broker gets STANDARD_ACCOUNTS: "default" may do everything, "restricted" only
below RESTRICTED_PREFIX (other SUBSCRIBEs refused, other PUBLISHes not delivered).
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.launch import aedes, amqtt, ejabberd, mosquitto, rabbitmq, reference
from harness.launch.base import (
    ACCOUNT_FILTERS,
    ALL_LISTENERS,
    LISTENER_KINDS,
    RESTRICTED_PREFIX,
    STANDARD_ACCOUNTS,
    Account,
    BrokerNotInstalled,
    LaunchError,
    LaunchRequest,
    PortInUseError,
    RunningBroker,
    ServedEndpoint,
    check_listeners,
)
from harness.launch.process import BrokerProcess, free_port

__all__ = [
    "ACCOUNT_FILTERS",
    "ALL_LISTENERS",
    "LAUNCHERS",
    "LISTENER_KINDS",
    "RESTRICTED_PREFIX",
    "STANDARD_ACCOUNTS",
    "Account",
    "BrokerNotInstalled",
    "BrokerProcess",
    "LaunchError",
    "LaunchRequest",
    "Launcher",
    "PortInUseError",
    "RunningBroker",
    "ServedEndpoint",
    "free_port",
    "launch",
    "launcher_listeners",
]

@dataclass(frozen=True)
class Launcher:
    """One kind of broker the harness can start: what `launch()` needs to know before starting it."""

    start: Callable[..., RunningBroker]  # (LaunchRequest, **its own options) -> a broker that serves
    start_timeout: float  # seconds start-up may take, unless the caller gives `timeout`
    listeners: tuple[str, ...] = ALL_LISTENERS  # the ones its broker can serve, tcp first
    # Why its software is not on this machine, or None. Launchers that find their software as they
    # start (a binary, an npm package) raise BrokerNotInstalled there instead.
    installed: Callable[[], str | None] = field(default=lambda: None)
    # Whether it takes accounts beyond ACCOUNT_FILTERS' (the reference broker: a platform's own kinds,
    # allowed everything); every other launcher writes its ACL from ACCOUNT_FILTERS alone.
    other_accounts: bool = False


# Each start() raises LaunchError when the broker does not come up, BrokerNotInstalled when its
# software is missing (the target's scenarios are then skipped).
LAUNCHERS: dict[str, Launcher] = {
    "aedes": Launcher(aedes.launch, aedes.START_TIMEOUT),
    "amqtt": Launcher(amqtt.launch, amqtt.START_TIMEOUT, amqtt.LISTENERS),
    "ejabberd": Launcher(ejabberd.launch, ejabberd.START_TIMEOUT, ejabberd.LISTENERS, ejabberd.installed),
    "mosquitto": Launcher(mosquitto.launch, mosquitto.START_TIMEOUT),
    "rabbitmq": Launcher(rabbitmq.launch, rabbitmq.START_TIMEOUT, rabbitmq.LISTENERS, rabbitmq.installed),
    "reference": Launcher(reference.launch, reference.START_TIMEOUT, other_accounts=True),
}


def launcher_listeners(kind: str) -> tuple[str, ...]:
    """The listeners a launcher of `kind` can open (its `transports` option), tcp first; ("tcp",) for an unknown kind."""
    launcher = LAUNCHERS.get(kind)
    return launcher.listeners if launcher is not None else ("tcp",)


def launch(
    kind: str,
    workdir: Path,
    *,
    port: int | None = None,
    timeout: float | None = None,
    accounts: Mapping[str, Account] = STANDARD_ACCOUNTS,
    transports: Sequence[str] = ("tcp",),
    **options: Any,
) -> RunningBroker:
    """Start a broker of `kind` on 127.0.0.1:<port> (a free one unless given); its files go to a
    fresh dir under `workdir`.

    `transports` names the listeners to open (LISTENER_KINDS, among the launcher's `listeners`):
    each further one gets a free port, TLS ones certificates generated for this run under the
    broker's dir/certs. `options` are the launcher's own (see its module's launch()).
    """
    launcher = LAUNCHERS.get(kind)
    if launcher is None:
        raise LaunchError(f"unknown broker kind {kind!r}; known kinds: {', '.join(sorted(LAUNCHERS))}")
    try:
        # A misspelt option is a setup mistake: one line naming it, not a TypeError traceback.
        inspect.signature(launcher.start).bind(None, **options)
    except TypeError as exc:
        raise LaunchError(f"{kind}: {exc}") from exc
    check_listeners(kind, list(transports), launcher.listeners)
    unknown = [key for key in accounts if key not in ACCOUNT_FILTERS]
    if unknown and not launcher.other_accounts:
        raise LaunchError(f"{kind}: no ACL defined for account(s) {', '.join(unknown)} (known: {', '.join(ACCOUNT_FILTERS)})")
    problem = launcher.installed()
    if problem:
        raise BrokerNotInstalled(problem)
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    # Its own dir per broker, so several brokers (or runs) can share a workdir without clobbering.
    own = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root)).resolve()
    request = LaunchRequest(own, launcher.start_timeout if timeout is None else timeout, port, dict(accounts), tuple(transports))
    return launcher.start(request, **options)
