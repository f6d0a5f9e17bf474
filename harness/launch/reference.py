"""Launcher for the bundled reference broker, `python -m harness.broker --config <yaml>`.

The broker is reached over the network like any other target (the harness knows nothing of its
internals); only the config file below ties the two together.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import harness
from harness.launch import listeners
from harness.launch.base import ACCOUNT_FILTERS, LISTENER_KINDS, WS_PATH, Account, LaunchError

if TYPE_CHECKING:
    from harness.launch.base import LaunchRequest, RunningBroker
    from harness.launch.process import BrokerProcess

NAME = "reference"
START_TIMEOUT = 10.0  # seconds
_PACKAGE_ROOT = Path(harness.__file__).resolve().parent
_READY = re.compile(r"\bready\b", re.IGNORECASE)


def platform_accounts(personality: str, accounts: Mapping[str, Account],
                      options: Mapping[str, Any] | None = None) -> dict[str, Account]:
    """The standard accounts in the form the personality's platform expects (Cumulocity `tenant/user`,
    an Itron JWT as password), then the platform's own kinds of account (`Personality.platform_accounts`:
    a Watson device token, the Cumulocity bootstrap user, the CloudPlugs enrolment model): what the
    broker registers and what scenarios connect with."""
    from harness.broker.personalities import PERSONALITIES

    kind = PERSONALITIES.get(personality)
    if kind is None:  # the broker itself refuses an unknown personality, naming the known ones
        return dict(accounts)
    settings = dict(options or {})
    shaped = {key: Account(*kind.account(a.username, a.password, settings)) for key, a in accounts.items()}
    extra = {key: Account(*pair) for key, pair in kind.platform_accounts(settings).items() if key not in shaped}
    return {**shaped, **extra}


def reference_config(port: int, personality: str, accounts: Mapping[str, Account],
                     personality_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The broker's YAML config. The one place to adjust when the broker's config format changes."""
    config: dict[str, Any] = {
        "listeners": [{"host": "127.0.0.1", "port": port, "transport": "tcp"}],
        "personality": personality,
        "auth": {
            "allow_anonymous": False,
            "users": {account.username: account.password for account in accounts.values()},
        },
        "acl": [
            # A platform's own accounts (a Watson device, ...) may do what the platform lets them: `#` here.
            {"user": account.username, "allow": [{"topic": ACCOUNT_FILTERS.get(key, "#"), "access": "readwrite"}]}
            for key, account in accounts.items()
        ],
    }
    if personality_options:  # the platform's settings (profile, then targets.yaml), for the personality
        config["personality_options"] = dict(personality_options)
    return config


def available() -> bool:
    return (_PACKAGE_ROOT / "broker" / "__main__.py").is_file()


def launch(
    request: LaunchRequest,
    *,
    personality: str = "strict",
    personality_options: Mapping[str, Any] | None = None,
    client_id_from_cn: bool | None = None,
    broker_config: Mapping[str, Any] | None = None,
) -> RunningBroker:
    """Start the reference broker as `personality`, with the platform's settings `personality_options`.

    `client_id_from_cn` makes the mtls listener take the client certificate as the credential and
    its common name as the device id (Cumulocity's two-way SSL); unless given, the setting of that
    name in `personality_options` says it, so a targets entry can (`settings: {client_id_from_cn: true}`).
    Requested accounts beyond the standard ones (a platform's own kinds, already in its shape) may do
    everything (ACL `#`).
    `broker_config` holds further sections of the broker's config (a profile's `broker:`, e.g.
    `limits: {maximum_qos: 1}`), merged over the generated one section by section.
    """
    if not available():
        raise LaunchError(f"{NAME}: harness.broker is not available yet")
    if client_id_from_cn is None:
        client_id_from_cn = setting_flag((personality_options or {}).get("client_id_from_cn", False), "client_id_from_cn")
    requested = request.accounts
    standard = {key: account for key, account in requested.items() if key in ACCOUNT_FILTERS}
    accounts = {**platform_accounts(personality, standard, personality_options),
                **{key: account for key, account in requested.items() if key not in ACCOUNT_FILTERS}}
    workdir = request.workdir
    config_file = workdir / "broker.yaml"
    env = dict(os.environ)
    # Import this very checkout's harness whatever the cwd, installed or not; unbuffered so the
    # `ready` line reaches the log as it is printed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT.parent), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    pki = listeners.pki_for(request)

    def prepare(chosen: int, ports: dict[str, int]) -> BrokerProcess:
        config = reference_config(chosen, personality, accounts, personality_options)
        config["listeners"] += [_listener(kind, number, pki, client_id_from_cn) for kind, number in ports.items() if kind != "tcp"]
        for section, value in (broker_config or {}).items():
            if isinstance(value, Mapping) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **value}
            else:
                config[section] = value
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        return listeners.loopback_process(
            request,
            NAME,
            [sys.executable, "-m", "harness.broker", "--config", str(config_file)],
            chosen,
            ready_pattern=_READY,
            # The ready line comes once every listener is bound; a TCP probe could succeed before the
            # TLS and WebSocket listeners exist (a run over `tls` then met a refused port).
            tcp_ready=False,
            env=env,
            # `python -m` puts the cwd first on sys.path: run from the checkout so that it wins there too
            cwd=_PACKAGE_ROOT.parent,
        )

    proc, chosen, ports = listeners.start_on_free_ports(request, prepare)
    # the broker ships with the harness
    return listeners.running_broker(NAME, proc, chosen, ports, accounts=accounts, pki=pki, version=harness.__version__)


def setting_flag(value: Any, name: str) -> bool:
    """A yes/no setting from targets.yaml or a profile: true/false (YAML booleans) only."""
    if isinstance(value, bool):
        return value
    raise LaunchError(f"{NAME}: setting {name}: expected true or false, got {value!r}")


def _listener(kind: str, port: int, pki: Any, client_id_from_cn: bool) -> dict[str, Any]:
    """The broker config of one further listener (see harness/broker/config.py)."""
    transport = LISTENER_KINDS[kind]
    listener: dict[str, Any] = {"host": "127.0.0.1", "port": port, "transport": transport}
    if transport in ("ws", "wss"):
        listener["path"] = WS_PATH
    if transport in ("tls", "wss"):
        pair = listeners.served_certificate(pki, kind)
        listener.update(certfile=str(pair.cert), keyfile=str(pair.key))
    if kind == "mtls":
        listener.update(cafile=str(pki.ca), require_client_cert=True, client_id_from_cn=client_id_from_cn)
    return listener  # the loop returns or raises
