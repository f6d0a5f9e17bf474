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
from typing import Any

import yaml

import harness
from harness.launch.base import (
    ACCOUNT_FILTERS,
    STANDARD_ACCOUNTS,
    Account,
    LaunchError,
    PortInUseError,
    RunningBroker,
)
from harness.launch.process import BrokerProcess, free_port

NAME = "reference"
_PACKAGE_ROOT = Path(harness.__file__).resolve().parent
_READY = re.compile(r"\bready\b", re.IGNORECASE)
_ATTEMPTS = 3


def reference_config(port: int, personality: str, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """The broker's YAML config. The one place to adjust when the broker's config format changes."""
    return {
        "listeners": [{"host": "127.0.0.1", "port": port, "transport": "tcp"}],
        "personality": personality,
        "auth": {
            "allow_anonymous": False,
            "users": {account.username: account.password for account in accounts.values()},
        },
        "acl": [
            {"user": account.username, "allow": [{"topic": ACCOUNT_FILTERS[key], "access": "readwrite"}]}
            for key, account in accounts.items()
        ],
    }


def available() -> bool:
    return (_PACKAGE_ROOT / "broker" / "__main__.py").is_file()


def launch(
    workdir: Path,
    *,
    port: int | None = None,
    personality: str = "strict",
    timeout: float = 10.0,
    accounts: Mapping[str, Account] = STANDARD_ACCOUNTS,
) -> RunningBroker:
    """Start the reference broker on 127.0.0.1:<port> (a free one unless given)."""
    if not available():
        raise LaunchError(f"{NAME}: harness.broker is not available yet")
    unknown = set(accounts) - set(ACCOUNT_FILTERS)
    if unknown:
        raise LaunchError(f"{NAME}: no ACL defined for account(s) {', '.join(sorted(unknown))}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "broker.yaml"
    env = dict(os.environ)
    # Import this very checkout's harness whatever the cwd, installed or not; unbuffered so the
    # `ready` line reaches the log as it is printed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT.parent), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    for attempt in range(1, _ATTEMPTS + 1):
        chosen = port if port is not None else free_port()
        config_file.write_text(
            yaml.safe_dump(reference_config(chosen, personality, accounts), sort_keys=False)
        )
        proc = BrokerProcess(
            NAME,
            [sys.executable, "-m", "harness.broker", "--config", str(config_file)],
            host="127.0.0.1",
            port=chosen,
            workdir=workdir,
            ready_pattern=_READY,
            timeout=timeout,
            env=env,
            # `python -m` puts the cwd first on sys.path: run from the checkout so that it wins there too
            cwd=_PACKAGE_ROOT.parent,
        )
        try:
            proc.start()
        except PortInUseError:
            if port is not None or attempt == _ATTEMPTS:
                raise
            continue
        return RunningBroker(
            name=NAME,
            host="127.0.0.1",
            port=chosen,
            version=harness.__version__,  # the broker ships with the harness
            log_path=proc.log_path,
            accounts=dict(accounts),
            process=proc,
        )
    raise AssertionError("unreachable")  # the loop returns or raises
