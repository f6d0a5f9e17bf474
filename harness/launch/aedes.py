"""Launcher for aedes (npm package `aedes`), the Node.js MQTT 3.1 / 3.1.1 broker.

aedes is a library, not a program: aedes_broker.mjs, shipped beside this module, is the small server
around it (TCP, TLS, WebSocket and secure WebSocket listeners, the accounts and their ACL),
configured by a JSON file this launcher writes. It needs the npm packages aedes and ws, found in
this order:

- $AEDES_DIR/node_modules (AEDES_DIR: a folder where `npm install aedes@1.2.0 ws@8.23.1` ran; in a
  clone of the harness, tools/aedes after `npm ci --prefix tools/aedes`);
- ./node_modules of the current folder;
- the global npm root (`npm root -g`, after `npm install -g aedes@1.2.0 ws@8.23.1`).

Node resolves an ES module's imports from the script's own folder (NODE_PATH does not apply to
them): each launch copies the script into its work directory and links node_modules there to the
one found. NODE_BIN names another node (default: node on PATH; apt-get install nodejs npm).

A SUBSCRIBE outside an account's filter gets SUBACK 0x80; a PUBLISH outside it is refused, which
aedes answers by closing the connection (its only way to refuse a PUBLISH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.launch import listeners
from harness.launch.base import ACCOUNT_FILTERS, LISTENER_KINDS, BrokerNotInstalled

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.launch.base import Account, LaunchRequest, RunningBroker
    from harness.launch.process import BrokerProcess

NAME = "aedes"
START_TIMEOUT = 10.0  # seconds
SCRIPT = "aedes_broker.mjs"
# The versions the aedes baseline was recorded with (tools/aedes/package.json pins the same; a test checks).
AEDES_VERSION = "1.2.0"
WS_VERSION = "8.23.1"
PACKAGES = ("aedes", "ws")
INSTALL = f"npm install aedes@{AEDES_VERSION} ws@{WS_VERSION}"
_READY = re.compile(r"^aedes (\S+) ready")


def find_node() -> str:
    binary = os.environ.get("NODE_BIN", "node")
    resolved = shutil.which(binary)
    if resolved is None:
        raise BrokerNotInstalled(f"{NAME}: {binary} not found (apt-get install nodejs npm)")
    return resolved


def _has_packages(node_modules: Path) -> bool:
    return all((node_modules / package / "package.json").is_file() for package in PACKAGES)


def _global_root() -> Path | None:
    """`npm root -g`, or None without npm."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    try:
        done = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    root = done.stdout.strip()
    return Path(root) if done.returncode == 0 and root else None


def find_node_modules() -> Path:
    """The node_modules folder holding aedes and ws: $AEDES_DIR's, ./node_modules, or the global npm root.

    An AEDES_DIR that is set but lacks either package is an error, not a reason to look elsewhere.
    """
    configured = os.environ.get("AEDES_DIR")
    if configured:
        node_modules = Path(configured).expanduser().resolve() / "node_modules"
        if not _has_packages(node_modules):
            missing = " and ".join(p for p in PACKAGES if not (node_modules / p / "package.json").is_file())
            raise BrokerNotInstalled(f"{NAME}: AEDES_DIR={configured} holds no node_modules/{missing} "
                                     f"({INSTALL} --prefix {configured})")
        return node_modules
    local = Path.cwd() / "node_modules"
    if _has_packages(local):
        return local
    global_root = _global_root()
    if global_root is not None and _has_packages(global_root):
        return global_root
    raise BrokerNotInstalled(f"{NAME}: npm packages aedes and ws not found in $AEDES_DIR, ./node_modules or the "
                             f"global npm root ({INSTALL} in a folder and set AEDES_DIR to it, or {INSTALL} -g)")


def prepare_script(workdir: Path, node_modules: Path) -> Path:
    """The packaged server script copied into `workdir`, with workdir/node_modules linked to `node_modules`."""
    script = workdir / SCRIPT
    script.write_bytes(resources.files(__package__).joinpath(SCRIPT).read_bytes())
    link = workdir / "node_modules"
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(node_modules, target_is_directory=True)
    return script


def installed_version(node_modules: Path) -> str | None:
    try:
        data = json.loads((node_modules / "aedes" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("version")) if isinstance(data, dict) and data.get("version") else None


def aedes_config(ports: Mapping[str, int], pki: Any, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """aedes_broker.mjs's JSON config; `ports` is listener kind -> port, tcp first."""
    served = []
    for kind, port in ports.items():
        transport = LISTENER_KINDS[kind]
        listener: dict[str, Any] = {"name": kind, "transport": transport, "port": port}
        if transport in ("tls", "wss"):
            pair = listeners.served_certificate(pki, kind)
            listener.update(cert=str(pair.cert), key=str(pair.key))
        if kind == "mtls":
            listener["ca"] = str(pki.ca)
        served.append(listener)
    return {
        "host": "127.0.0.1",
        "listeners": served,
        "users": {account.username: account.password for account in accounts.values()},
        "acl": {account.username: ACCOUNT_FILTERS[key] for key, account in accounts.items()},
        "options": {},
    }


def launch(request: LaunchRequest) -> RunningBroker:
    """Start aedes: aedes_broker.mjs, copied into the work directory beside a link to the npm packages."""
    node = find_node()
    node_modules = find_node_modules()
    workdir = request.workdir  # absolute: node runs in it, so the paths it is given must not be relative
    script = prepare_script(workdir, node_modules)
    conf_file = workdir / "aedes.json"
    pki = listeners.pki_for(request)
    accounts = request.accounts

    def prepare(chosen: int, ports: dict[str, int]) -> BrokerProcess:
        conf_file.write_text(json.dumps(aedes_config(ports, pki, accounts), indent=1))
        return listeners.loopback_process(
            request,
            NAME,
            [node, str(script), str(conf_file)],
            chosen,
            # printed once every listener is open; a TCP probe would pass as soon as the first one is
            ready_pattern=_READY,
            tcp_ready=False,
            cwd=script.parent,
        )

    proc, chosen, ports = listeners.start_on_free_ports(request, prepare)
    found = proc.ready_match
    return listeners.running_broker(NAME, proc, chosen, ports, accounts=accounts, pki=pki, version=found.group(1) if found else installed_version(node_modules))
