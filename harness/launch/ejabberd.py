"""Launcher for ejabberd (Debian ejabberd) serving MQTT with mod_mqtt.

`ejabberdctl foreground` runs the node in this process group, as user ejabberd (setpriv when run
as root: ejabberdctl's own `su` would put the node in a session of its own, out of reach of the
group stop). ERL_DIST_PORT makes the node listen for distribution on that one loopback port and run
without epmd; every ejabberdctl call gets the same -c file, so none ever starts an epmd on
0.0.0.0:4369. The accounts are registered with `ejabberdctl register` once the node serves.

ejabberd drops to its own user, which cannot enter the harness's 0700 work dirs: its files live
in a directory of their own under the system temp dir, owned by ejabberd and removed at stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.launch import listeners
from harness.launch.base import ACCOUNT_FILTERS, WS_PATH, LaunchError
from harness.launch.erlang import ErlangBrokerProcess, await_serving, chown_tree, user_ids
from harness.launch.process import free_port

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.launch.base import Account, LaunchRequest, RunningBroker
    from harness.launch.process import BrokerProcess

NAME = "ejabberd"
START_TIMEOUT = 30.0  # seconds
DEFAULT_CTL = "/usr/sbin/ejabberdctl"
USER = "ejabberd"
XMPP_HOST = "localhost"  # MQTT user names are the user part of a JID of this host
# One certificate for the whole node (certfiles): no per-listener certificates, so no
# mtls / tls-expired / tls-not-yet-valid listeners beside the ordinary TLS one.
LISTENERS: tuple[str, ...] = ("tcp", "tls", "ws", "wss")
_VERSION = re.compile(r"ejabberd (\d+\.\d+(?:\.\d+)?)\S* is started")
_NOISE = re.compile(r"^\s*$|Start accepting|Loading configuration|Configuration loaded|Not using ACME")


def ctl_binary() -> str:
    return os.environ.get("EJABBERDCTL_BIN", DEFAULT_CTL)


def installed() -> str | None:
    """Why ejabberd cannot be launched here (not installed), or None."""
    if not os.access(ctl_binary(), os.X_OK):
        return f"{NAME}: {ctl_binary()} not found: not installed (apt-get install ejabberd)"
    if user_ids(USER) is None:
        return f"{NAME}: no system user {USER!r}: not installed (apt-get install ejabberd)"
    return None


def _covers(account_filter: str, topic_filter: str) -> bool:
    if account_filter in ("#", topic_filter):
        return True
    return account_filter.endswith("/#") and (topic_filter + "/").startswith(account_filter[:-1])


def access_rules(accounts: Mapping[str, Account]) -> dict[str, list[dict[str, str]]]:
    """mod_mqtt access rules: per filter of ACCOUNT_FILTERS, most specific first, `allow` for every
    account whose own filter covers it, then deny."""
    used = {key: ACCOUNT_FILTERS[key] for key in accounts}
    filters = sorted(set(used.values()), key=lambda f: (f == "#", -f.count("/"), f))
    return {f: [{"allow": f"harness_{key}"} for key, own in used.items() if _covers(own, f)] + [{"deny": "all"}]
            for f in filters}


def ejabberd_yml(ports: Mapping[str, int], pem: Path | None, accounts: Mapping[str, Account]) -> str:
    host = "127.0.0.1"
    # Every listener's accept queue: past ejabberd's default of 128, the SYNs of a run's burst of
    # connections (two workers with 128 scenarios in flight each) are dropped, and a dropped one is
    # retried after 1 s, 3 s, 7 s: past the harness's connect timeout ("cannot reach broker").
    queue = {"ip": host, "backlog": 1000}
    listen: list[dict[str, Any]] = [{"port": ports["tcp"], **queue, "module": "mod_mqtt"}]
    if "tls" in ports:
        listen.append({"port": ports["tls"], **queue, "module": "mod_mqtt", "tls": True})
    for kind in ("ws", "wss"):
        if kind in ports:
            listen.append({"port": ports[kind], **queue, "module": "ejabberd_http", "tls": kind == "wss",
                           "request_handlers": {WS_PATH: "mod_mqtt"}})
    config: dict[str, Any] = {
        "hosts": [XMPP_HOST],
        "loglevel": "info",
        "auth_method": "internal",
        "acme": {"auto": False},
        "listen": listen,
        "acl": {f"harness_{key}": {"user": account.username} for key, account in accounts.items()},
    }
    if pem is not None:
        config["certfiles"] = [str(pem)]
    return yaml.safe_dump(config, sort_keys=False) + mod_mqtt_yml(accounts)


def mod_mqtt_yml(accounts: Mapping[str, Account]) -> str:
    """The modules section. Written by hand: ejabberd reads unquoted and 'single-quoted' YAML
    scalars as atoms, and a topic filter given as an atom is "Malformed"; "double quotes" keep it a string."""
    lines = ["modules:", "  mod_mqtt:",
             "    max_topic_depth: 64   # the default of 8 levels would refuse deeper topics, which MQTT allows"]
    for option in ("access_subscribe", "access_publish"):
        lines.append(f"    {option}:")
        for topic_filter, rule in access_rules(accounts).items():
            items = ", ".join(f"{verb}: {who}" for entry in rule for verb, who in entry.items())
            lines.append(f"      {json.dumps(topic_filter)}: [{items}]")
    return "\n".join(lines) + "\n"


def launch(request: LaunchRequest) -> RunningBroker:
    """Start an ejabberd node (mod_mqtt) through ejabberdctl, as its own user, from a run folder of its
    own outside the work directory; its accounts are registered once it serves."""
    workdir, accounts, timeout = request.workdir, request.accounts, request.timeout
    ids = user_ids(USER)
    assert ids is not None
    as_root = os.geteuid() == 0
    if not as_root and os.geteuid() != ids[0]:
        raise LaunchError(f"{NAME}: ejabberdctl runs only as root or as user {USER}")
    run_dir = Path(tempfile.mkdtemp(prefix="harness-ejabberd-"))
    (workdir / "ejabberd-files").write_text(f"{run_dir}\n")  # where to look while it runs
    pki = listeners.pki_for(request, server_days=365)
    pem = None
    if pki is not None:
        pem = run_dir / "server.pem"
        pem.write_bytes(Path(pki.server.key).read_bytes() + Path(pki.server.cert).read_bytes())
    for sub in ("spool", "logs"):
        (run_dir / sub).mkdir()
    run_as = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--init-groups", "--"] if as_root else []
    env = dict(os.environ, HOME=str(run_dir))  # the node's own .erlang.cookie, shared with ejabberdctl
    ctl_cfg = run_dir / "ejabberdctl.cfg"
    config_file = run_dir / "ejabberd.yml"
    ctl = [*run_as, ctl_binary(), "-c", str(ctl_cfg), "-d", str(run_dir), "-f", str(config_file),
           "-s", str(run_dir / "spool"), "-l", str(run_dir / "logs")]

    def prepare(chosen: int, ports: dict[str, int]) -> BrokerProcess:
        config_file.write_text(ejabberd_yml(ports, pem, accounts))
        ctl_cfg.write_text("\n".join([
            f"ERLANG_NODE=harness{secrets.token_hex(4)}@localhost",
            f"ERL_DIST_PORT={free_port()}",  # distribution on this port only, no epmd
            "ERL_OPTIONS='-kernel inet_dist_use_interface {127,0,0,1}'",
            f"EJABBERD_PID_PATH={run_dir / 'ejabberd.pid'}",
        ]) + "\n")
        (run_dir / "inetrc").write_text("{lookup,[file,native]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n")
        chown_tree(run_dir, *ids)
        return listeners.loopback_process(
            request,
            NAME,
            [*ctl, "foreground"],
            chosen,
            process_type=ErlangBrokerProcess,
            tcp_ready=True,
            env=env,
            cwd=run_dir,
            ignore_lines=_NOISE,
            stop_command=[*ctl, "stop"],
            stop_env=env,
            stop_timeout=10.0,
        )

    started = time.monotonic()
    try:
        proc, chosen, ports = listeners.start_on_free_ports(request, prepare)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    proc.on_stopped.append(lambda: _remove_run_dir(run_dir, workdir))
    def register_all(deadline: float) -> None:
        for account in accounts.values():
            _register(ctl, env, account, deadline)

    await_serving(NAME, proc, chosen, ports, accounts, started + timeout, first=register_all)
    log = proc.log_text()
    with contextlib.suppress(OSError):
        log += (run_dir / "logs" / "ejabberd.log").read_text(errors="replace")
    found = _VERSION.search(log)
    return listeners.running_broker(NAME, proc, chosen, ports, accounts=accounts, pki=pki, version=found.group(1) if found else None)


def _remove_run_dir(run_dir: Path, workdir: Path) -> None:
    """Keep ejabberd's own log next to the harness's, then remove its files."""
    with contextlib.suppress(OSError):
        shutil.copyfile(run_dir / "logs" / "ejabberd.log", workdir / "ejabberd.log")
    shutil.rmtree(run_dir, ignore_errors=True)


def _register(ctl: list[str], env: dict[str, str], account: Account, deadline: float) -> None:
    """`ejabberdctl register USER HOST PASSWORD`; retried while the node is still coming up."""
    while True:
        done = subprocess.run([*ctl, "register", account.username, XMPP_HOST, account.password], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
        if done.returncode == 0 or "already registered" in output:
            return
        if time.monotonic() >= deadline:
            raise LaunchError(f"{NAME}: ejabberdctl register {account.username} failed: {output.splitlines()[-1:] or done.returncode}")
        time.sleep(0.2)
