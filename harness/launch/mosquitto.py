"""Launcher for Eclipse Mosquitto 2.x: generated config, dynamic-security plugin for the accounts.

The dynamic-security plugin is used rather than password_file + acl_file because an acl_file never
refuses a SUBSCRIBE (mosquitto grants it and filters delivery), while scenarios need the refusal
on the wire: SUBACK 0x80 (3.1/3.1.1) or 0x87 (5.0).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.launch import listeners
from harness.launch.base import ACCOUNT_FILTERS, LISTENER_KINDS, BrokerNotInstalled

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from harness.launch.base import Account, LaunchRequest, RunningBroker
    from harness.launch.process import BrokerProcess

NAME = "mosquitto"
START_TIMEOUT = 10.0  # seconds
DEFAULT_BINARY = "/usr/sbin/mosquitto"
PLUGIN_FILE = "mosquitto_dynamic_security.so"
# Debian puts the plugin in the multiarch dir (/usr/lib/x86_64-linux-gnu, /usr/lib/aarch64-linux-gnu...).
PLUGIN_GLOBS = (f"/usr/lib/*/{PLUGIN_FILE}", f"/usr/lib/{PLUGIN_FILE}", f"/usr/local/lib/{PLUGIN_FILE}")
# Same as `mosquitto_ctrl dynsec init` and the plugin's own default; the hash only guards test accounts.
PBKDF2_ITERATIONS = 101

_READY = re.compile(r"mosquitto version (\S+) running")
_VERSION = re.compile(r"mosquitto version (\S+)")
# Lines that follow the real error and would otherwise hide it in LaunchError messages.
_NOISE = re.compile(r"^Error found at |should not be run as root|version \S+ terminating|^Saving in-memory")


@dataclass(frozen=True)
class Listener:
    """One `listener` block. TLS and WebSocket listeners will add their lines through `options`."""

    port: int
    host: str = "127.0.0.1"
    options: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [f"listener {self.port} {self.host}", *self.options]


def tls_listeners(ports: Mapping[str, int], pki: Any) -> list[Listener]:
    """The listener blocks for every kind but tcp (`ports`: kind -> port), certificates from `pki`."""
    blocks = []
    for kind, chosen in ports.items():
        transport = LISTENER_KINDS[kind]
        options: list[str] = []
        if transport in ("ws", "wss"):
            # Without socket_domain the websockets listener binds every interface despite the address.
            options += ["protocol websockets", "socket_domain ipv4"]
        if transport in ("tls", "wss"):
            pair = listeners.served_certificate(pki, kind)
            options += [f"certfile {pair.cert}", f"keyfile {pair.key}"]
        if kind == "mtls":
            options += [f"cafile {pki.ca}", "require_certificate true"]
        if kind != "tcp":
            blocks.append(Listener(chosen, options=tuple(options)))
    return blocks


def find_binary() -> str:
    binary = os.environ.get("MOSQUITTO_BIN", DEFAULT_BINARY)
    resolved = shutil.which(binary)
    if resolved is None:
        raise BrokerNotInstalled(f"{NAME}: binary {binary} not found (apt-get install mosquitto)")
    return resolved


def find_plugin() -> str:
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise BrokerNotInstalled(
        f"{NAME}: dynamic-security plugin {PLUGIN_FILE} not found under /usr/lib (apt-get install mosquitto)"
    )


def hash_password(
    password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> dict[str, Any]:
    """The dynsec.json password fields: base64 of PBKDF2-HMAC-SHA512 (64 bytes) over the *decoded* salt."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, dklen=64)
    return {
        "password": base64.b64encode(digest).decode("ascii"),
        "salt": base64.b64encode(salt).decode("ascii"),
        "iterations": iterations,
    }


def _role_acls(topic_filter: str) -> list[dict[str, Any]]:
    acls = [
        {"acltype": "publishClientSend", "topic": topic_filter, "allow": True},
        {"acltype": "publishClientReceive", "topic": topic_filter, "allow": True},
        {"acltype": "subscribePattern", "topic": topic_filter, "allow": True},
        {"acltype": "unsubscribePattern", "topic": topic_filter, "allow": True},
    ]
    if topic_filter == "#":
        # '#' does not match topics starting with '$' (MQTT 4.7.2), so the account that may do
        # everything gets $SYS explicitly (read only: mosquitto owns it). $CONTROL, the dynsec admin
        # API, is deliberately left out: a scenario must not be able to rewrite the ACLs.
        acls += [
            {"acltype": "publishClientReceive", "topic": "$SYS/#", "allow": True},
            {"acltype": "subscribePattern", "topic": "$SYS/#", "allow": True},
        ]
    return acls


def dynsec_config(accounts: Mapping[str, Account]) -> dict[str, Any]:
    """The dynamic-security plugin's JSON state: one role per account, named after its key."""
    clients = []
    roles = []
    for key, account in accounts.items():
        rolename = f"harness-{key}"
        clients.append(
            {
                "username": account.username,
                "textName": f"harness {key} account",
                **hash_password(account.password),
                "roles": [{"rolename": rolename}],
            }
        )
        roles.append({"rolename": rolename, "acls": _role_acls(ACCOUNT_FILTERS[key])})
    return {
        "clients": clients,
        "groups": [],
        "roles": roles,
        # Deny by default what is not granted above; receiving is governed by what was subscribed.
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def mosquitto_conf(
    listeners: Sequence[Listener], plugin: str | None, dynsec_file: Path | None, extra: Sequence[str] = ()
) -> str:
    """The config file; with no plugin the broker is anonymous: no accounts, no ACL, every client allowed."""
    lines = [
        "# generated by harness.launch.mosquitto",
        "per_listener_settings false",
        f"allow_anonymous {'false' if plugin else 'true'}",
        "persistence false",
        # stderr, not stdout: stdout is block-buffered when redirected, the log would appear only at exit
        "log_dest stderr",
        "connection_messages true",
        # the spec allows any keep alive up to 65535 s; 2.x refuses 3.1.1 clients above max_keepalive
        "max_keepalive 65535",
        # small packets one after another is all a conformance run sends: no Nagle delay
        "set_tcp_nodelay true",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # As root mosquitto drops to user `mosquitto` before the plugin reads dynsec.json, and that
        # user cannot enter a 0700 work dir such as pytest's tmp_path. Staying root is the robust
        # choice for a loopback-only test broker.
        lines.append("user root")
    if plugin:
        lines += [f"plugin {plugin}", f"plugin_opt_config_file {dynsec_file}"]
    for listener in listeners:
        lines += listener.lines()
    lines += extra
    return "\n".join(lines) + "\n"


def launch(request: LaunchRequest, *, extra_config: Sequence[str] = (), anonymous: bool = False) -> RunningBroker:
    """Start mosquitto with a generated config. `extra_config`: further config lines. `anonymous`: no
    accounts at all (`allow_anonymous true`, no dynamic-security plugin), as a broker someone runs
    with its defaults is; the request's accounts are then ignored.
    """
    binary = find_binary()
    workdir, accounts = request.workdir, request.accounts
    plugin, dynsec_file = None, None
    if anonymous:
        accounts = {}
    else:
        plugin = find_plugin()
        dynsec_file = workdir / "dynsec.json"
        dynsec_file.write_text(json.dumps(dynsec_config(accounts), indent=1))
    conf_file = workdir / "mosquitto.conf"
    pki = listeners.pki_for(request)

    def prepare(chosen: int, ports: dict[str, int]) -> BrokerProcess:
        blocks = [Listener(chosen), *tls_listeners(ports, pki)]
        conf_file.write_text(mosquitto_conf(blocks, plugin, dynsec_file, extra_config))
        return listeners.loopback_process(
            request,
            NAME,
            [binary, "-c", str(conf_file)],
            chosen,
            # "running" is logged once every listener is open. A TCP probe alone could be answered by
            # another process that grabbed the port, before mosquitto fails to bind it and exits.
            ready_pattern=_READY,
            tcp_ready=False,
            ignore_lines=_NOISE,
        )

    proc, chosen, ports = listeners.start_on_free_ports(request, prepare)
    found = proc.ready_match or _VERSION.search(proc.log_text())
    return listeners.running_broker(NAME, proc, chosen, ports, accounts=accounts, pki=pki, version=found.group(1) if found else None)
