"""Launcher for amqtt (pip package `amqtt`), the asyncio MQTT 3.1.1 broker: generated YAML config.

Accounts come from amqtt's FileAuthPlugin (a password file of Argon2 hashes) and their ACL from its
TopicAccessControlListPlugin: `acl` limits SUBSCRIBE (a refused filter gets SUBACK 0x80) and
`publish_acl` limits PUBLISH (a refused message is acknowledged and not delivered). Without
AnonymousAuthPlugin a CONNECT without user name is refused.

The broker runs as `python -m amqtt.scripts.broker_script` under the harness's own interpreter, so
it is the amqtt installed next to the harness (`pip install amqtt`). Its TLS listeners ask for a
client certificate but never require one (amqtt hard-codes CERT_OPTIONAL), so there is no `mtls`
listener.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from typing import TYPE_CHECKING, Any

import yaml

from harness.launch import listeners
from harness.launch.base import ACCOUNT_FILTERS, LISTENER_KINDS, BrokerNotInstalled

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from harness.launch.base import Account, LaunchRequest, RunningBroker
    from harness.launch.process import BrokerProcess

NAME = "amqtt"
START_TIMEOUT = 15.0  # seconds
# What amqtt can serve (harness.launch.launcher_listeners): no listener that requires a client certificate.
LISTENERS: tuple[str, ...] = ("tcp", "tls", "ws", "wss", "tls-expired", "tls-not-yet-valid")
# Logged after every listener is bound (amqtt prints no "ready" line of its own).
_READY = re.compile(r"Starting session expiration monitor")
_NOISE = re.compile(r"DeprecationWarning|warnings\.warn|^\s*$")
# Argon2 parameters of the generated password file: the broker verifies a hash on every CONNECT,
# in its event loop, so the test accounts get the cheapest valid ones (they only guard loopback).
_ARGON2 = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


def version() -> str:
    """The installed amqtt's version; BrokerNotInstalled when there is none."""
    if importlib.util.find_spec("amqtt") is None:
        raise BrokerNotInstalled(f"{NAME}: Python package amqtt is not installed for {sys.executable} (pip install amqtt)")
    try:
        return importlib.metadata.version("amqtt")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def hash_password(password: str) -> str:
    """An Argon2 hash amqtt's FileAuthPlugin accepts (it verifies with pwdlib, installed with amqtt)."""
    from pwdlib.hashers.argon2 import Argon2Hasher

    return str(Argon2Hasher(**_ARGON2).hash(password))


def password_file(accounts: Mapping[str, Account]) -> str:
    return "".join(f"{account.username}:{hash_password(account.password)}\n" for account in accounts.values())


def amqtt_config(ports: Mapping[str, int], pki: Any, passwd: Path, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """The broker's YAML config; `ports` is listener kind -> port, tcp first (amqtt's `default` listener)."""
    served: dict[str, Any] = {}
    for kind, port in ports.items():
        transport = LISTENER_KINDS[kind]
        listener: dict[str, Any] = {"type": "ws" if transport in ("ws", "wss") else "tcp", "bind": f"127.0.0.1:{port}"}
        if transport in ("tls", "wss"):
            pair = listeners.served_certificate(pki, kind)
            listener.update(ssl=True, certfile=str(pair.cert), keyfile=str(pair.key))
        served["default" if kind == "tcp" else kind] = listener
    acl = {account.username: [ACCOUNT_FILTERS[key]] for key, account in accounts.items()}
    return {
        "listeners": served,
        "plugins": {
            # No AnonymousAuthPlugin: a CONNECT without a known user name and password is refused.
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(passwd)},
            # `acl` is what a user may SUBSCRIBE to, `publish_acl` what it may PUBLISH (an absent user: nothing).
            "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {"acl": acl, "publish_acl": acl},
        },
    }


def launch(request: LaunchRequest) -> RunningBroker:
    """Start amqtt's broker script under this interpreter, with FileAuthPlugin's password file."""
    found_version = version()
    workdir, accounts = request.workdir, request.accounts
    passwd = workdir / "passwd"
    passwd.write_text(password_file(accounts))
    conf_file = workdir / "amqtt.yaml"
    pki = listeners.pki_for(request)

    def prepare(chosen: int, ports: dict[str, int]) -> BrokerProcess:
        conf_file.write_text(yaml.safe_dump(amqtt_config(ports, pki, passwd, accounts), sort_keys=False))
        return listeners.loopback_process(
            request,
            NAME,
            [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf_file)],
            chosen,
            # Logged once every listener is open; a TCP probe would pass as soon as the first one is.
            ready_pattern=_READY,
            tcp_ready=False,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"},
            ignore_lines=_NOISE,
        )

    proc, chosen, ports = listeners.start_on_free_ports(request, prepare)
    return listeners.running_broker(NAME, proc, chosen, ports, accounts=accounts, pki=pki, version=found_version)

