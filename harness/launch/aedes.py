"""Launcher for aedes (npm package `aedes`), the Node.js MQTT 3.1 / 3.1.1 broker.

aedes is a library, not a program: tools/aedes/broker.mjs is the small server around it (TCP, TLS,
WebSocket and secure WebSocket listeners, the accounts and their ACL), configured by a JSON file
this launcher writes. Install it with `npm ci --prefix tools/aedes` (node and npm from
`apt-get install nodejs npm`); AEDES_DIR names another directory holding broker.mjs and its
node_modules, NODE_BIN another node.

A SUBSCRIBE outside an account's filter gets SUBACK 0x80; a PUBLISH outside it is refused, which
aedes answers by closing the connection (its only way to refuse a PUBLISH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.launch.base import (
    ACCOUNT_FILTERS,
    LISTENER_KINDS,
    STANDARD_ACCOUNTS,
    Account,
    BrokerNotInstalled,
    LaunchError,
    RunningBroker,
    check_listeners,
)
from harness.launch.listeners import pki_for, running_broker, start_on_free_ports
from harness.launch.process import BrokerProcess

NAME = "aedes"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tools" / "aedes"
SCRIPT = "broker.mjs"
_READY = re.compile(r"^aedes (\S+) ready")


def find_node() -> str:
    binary = os.environ.get("NODE_BIN", "node")
    resolved = shutil.which(binary)
    if resolved is None:
        raise BrokerNotInstalled(f"{NAME}: {binary} not found (apt-get install nodejs npm)")
    return resolved


def find_script() -> Path:
    """broker.mjs, once `npm ci` has put aedes and ws next to it; BrokerNotInstalled otherwise."""
    directory = Path(os.environ.get("AEDES_DIR") or DEFAULT_DIR)
    script = directory / SCRIPT
    if not script.is_file():
        raise BrokerNotInstalled(f"{NAME}: {script} not found (set AEDES_DIR to the directory that holds it)")
    for package in ("aedes", "ws"):
        if not (directory / "node_modules" / package / "package.json").is_file():
            raise BrokerNotInstalled(f"{NAME}: npm package {package} is not installed in {directory} "
                                     f"(npm ci --prefix {directory})")
    return script


def installed_version(script: Path) -> str | None:
    try:
        data = json.loads((script.parent / "node_modules" / "aedes" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("version")) if isinstance(data, dict) and data.get("version") else None


def aedes_config(ports: Mapping[str, int], pki: Any, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """broker.mjs's JSON config; `ports` is listener kind -> port, tcp first."""
    unknown = set(accounts) - set(ACCOUNT_FILTERS)
    if unknown:
        raise LaunchError(f"{NAME}: no ACL defined for account(s) {', '.join(sorted(unknown))} (known: {', '.join(ACCOUNT_FILTERS)})")
    listeners = []
    for kind, port in ports.items():
        transport = LISTENER_KINDS[kind]
        listener: dict[str, Any] = {"name": kind, "transport": transport, "port": port}
        if transport in ("tls", "wss"):
            pair = {"tls-expired": pki.expired, "tls-not-yet-valid": pki.not_yet_valid}.get(kind, pki.server)
            listener.update(cert=str(pair.cert), key=str(pair.key))
        if kind == "mtls":
            listener["ca"] = str(pki.ca)
        listeners.append(listener)
    return {
        "host": "127.0.0.1",
        "listeners": listeners,
        "users": {account.username: account.password for account in accounts.values()},
        "acl": {account.username: ACCOUNT_FILTERS[key] for key, account in accounts.items()},
        "options": {},
    }


def launch(
    workdir: Path,
    *,
    port: int | None = None,
    timeout: float = 10.0,
    accounts: Mapping[str, Account] = STANDARD_ACCOUNTS,
    transports: Sequence[str] = ("tcp",),
) -> RunningBroker:
    """Start aedes on 127.0.0.1:<port> (a free one unless given); files go into `workdir`.

    `transports` names the listeners to open (base.LISTENER_KINDS); each further one gets a free
    port, TLS ones a certificate generated for this run under workdir/certs.
    """
    check_listeners(NAME, list(transports))
    node = find_node()
    script = find_script()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    conf_file = workdir / "aedes.json"
    pki = pki_for(transports, workdir)

    def prepare(chosen: int, ports: dict[str, int]) -> BrokerProcess:
        conf_file.write_text(json.dumps(aedes_config(ports, pki, accounts), indent=1))
        return BrokerProcess(
            NAME,
            [node, str(script), str(conf_file)],
            host="127.0.0.1",
            port=chosen,
            workdir=workdir,
            # printed once every listener is open; a TCP probe would pass as soon as the first one is
            ready_pattern=_READY,
            tcp_ready=False,
            timeout=timeout,
            cwd=script.parent,
        )

    proc, chosen, ports = start_on_free_ports(port, transports, prepare)
    found = proc.ready_match
    return running_broker(NAME, proc, chosen, ports, accounts=accounts, pki=pki, version=found.group(1) if found else installed_version(script))
