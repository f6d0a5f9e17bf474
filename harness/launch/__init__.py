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
from collections.abc import Callable
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
    PortInUseError,
    RunningBroker,
    ServedEndpoint,
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
    "PortInUseError",
    "RunningBroker",
    "ServedEndpoint",
    "free_port",
    "launch",
    "launcher_listeners",
]

# Each takes (workdir, **options) and returns a RunningBroker that serves, or raises LaunchError
# (BrokerNotInstalled when the broker's software is missing: the target's scenarios are skipped).
# A launcher with a `transports` option opens every listener of ALL_LISTENERS unless its module
# names the ones its broker can serve in `LISTENERS` (tcp first).
LAUNCHERS: dict[str, Callable[..., RunningBroker]] = {
    "aedes": aedes.launch,
    "amqtt": amqtt.launch,
    "ejabberd": ejabberd.launch,
    "mosquitto": mosquitto.launch,
    "rabbitmq": rabbitmq.launch,
    "reference": reference.launch,
}


def launcher_listeners(kind: str) -> tuple[str, ...]:
    """The listeners a launcher of `kind` can open (its `transports` option), tcp first; ("tcp",) if it has none."""
    launcher = LAUNCHERS.get(kind)
    if launcher is None or "transports" not in inspect.signature(launcher).parameters:
        return ("tcp",)
    return tuple(getattr(inspect.getmodule(launcher), "LISTENERS", ALL_LISTENERS))


def launch(kind: str, workdir: Path, **options: Any) -> RunningBroker:
    """Start a broker of `kind` on a free loopback port; its files go to a fresh dir under `workdir`."""
    launcher = LAUNCHERS.get(kind)
    if launcher is None:
        raise LaunchError(f"unknown broker kind {kind!r}; known kinds: {', '.join(sorted(LAUNCHERS))}")
    try:
        # A misspelt option is a setup mistake: one line naming it, not a TypeError traceback.
        inspect.signature(launcher).bind(workdir, **options)
    except TypeError as exc:
        raise LaunchError(f"{kind}: {exc}") from exc
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    # Its own dir per broker, so several brokers (or runs) can share a workdir without clobbering.
    return launcher(Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root)), **options)
