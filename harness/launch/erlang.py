"""What the Erlang brokers (RabbitMQ, ejabberd) share: an MQTT readiness probe, a private epmd on a
loopback port, and a broker process stopped by its vendor command before its process group.

Erlang nodes talk to each other over a distribution port that epmd (the port mapper, 4369 on every
interface by default) hands out. A harness-launched node keeps both on 127.0.0.1 and on free ports,
so two runs (or a system broker) never meet, and nothing of it outlives `stop()`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.launch.base import Account, LaunchError
from harness.launch.process import BrokerProcess, port_accepts
from harness.wire import (
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    PacketType,
    Version,
    encode,
    reason_name,
)

EPMD_BINARY = "/usr/bin/epmd"


def connack_code(host: str, port: int, account: Account | None, timeout: float = 2.0) -> int:
    """Connect, send an MQTT 3.1.1 CONNECT (clean session: the probe leaves nothing behind), return the
    CONNACK return code (then DISCONNECT). OSError if no CONNACK comes."""
    connect = Connect(client_id=f"harnessprobe{secrets.token_hex(4)}", clean_session=True, keep_alive=30,
                      username=account.username if account else None, password=account.password if account else None)
    decoder = Decoder(Version.V311, role="server")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(encode(connect, Version.V311))
        while True:
            chunk = sock.recv(256)
            if not chunk:
                raise ConnectionResetError("closed before CONNACK")
            items = decoder.feed(chunk)
            if items:
                break
        first = items[0]
        if not isinstance(first, Decoded) or not isinstance(first.packet, Connack):
            raise ConnectionError(f"not a CONNACK: {chunk.hex(' ')}")
        with contextlib.suppress(OSError):
            sock.sendall(encode(Disconnect(), Version.V311))
        return first.packet.reason_code


def wait_mqtt_ready(name: str, host: str, port: int, account: Account, deadline: float,
                    alive: Callable[[], bool], log_hint: Callable[[], str]) -> None:
    """Until `deadline` (monotonic): CONNECT with `account` must get CONNACK 0. The port may accept
    before the broker serves MQTT (or before its users exist), so a refusal is retried too."""
    last = "no answer"
    while True:
        if not alive():
            raise LaunchError(f"{name}: exited while starting; {log_hint()}")
        try:
            code = connack_code(host, port, account)
        except OSError as exc:
            last = f"no CONNACK ({exc})"
        else:
            if code == 0:
                return
            last = f"CONNACK {code} ({reason_name(PacketType.CONNACK, code, Version.V311)}) for account {account.username!r}"
        if time.monotonic() >= deadline:
            raise LaunchError(f"{name}: {host}:{port} accepts but does not serve MQTT: {last}; {log_hint()}")
        time.sleep(0.1)


def wait_ports(name: str, host: str, ports: Sequence[int], deadline: float, alive: Callable[[], bool],
               log_hint: Callable[[], str]) -> None:
    """Every further listener accepts before `deadline` (plugins may open theirs after the main one)."""
    for port in ports:
        while not port_accepts(host, port, timeout=0.1):
            if not alive():
                raise LaunchError(f"{name}: exited while starting; {log_hint()}")
            if time.monotonic() >= deadline:
                raise LaunchError(f"{name}: listener {host}:{port} not open; {log_hint()}")
            time.sleep(0.05)


def await_serving(name: str, proc: BrokerProcess, port: int, ports: dict[str, int], accounts: Mapping[str, Account],
                  deadline: float, first: Callable[[float], None] = lambda deadline: None) -> None:
    """After the node's process started: `first(deadline)` (ejabberd registers its users), then until
    `deadline` the default account's CONNECT on `port` must get CONNACK 0 and every further listener
    must accept. An Erlang node opens its ports before it serves on them, so the port alone proves
    nothing. On any failure (or interruption) the node is stopped before the error goes on."""
    alive = lambda: proc.running  # noqa: E731
    hint = lambda: f"last log line: {proc.last_log_line()} (log: {proc.log_path})"  # noqa: E731
    try:
        first(deadline)
        default = accounts.get("default") or next(iter(accounts.values()))
        wait_mqtt_ready(name, "127.0.0.1", port, default, deadline, alive, hint)
        wait_ports(name, "127.0.0.1", [p for kind, p in ports.items() if kind != "tcp"], deadline, alive, hint)
    except BaseException:
        proc.stop()
        raise


def epmd_process(port: int, workdir: Path, env: dict[str, str]) -> BrokerProcess:
    """A private epmd on 127.0.0.1:<port>, in the foreground (so it is ours to stop; an `epmd -daemon`
    started by erl would leave the process group and survive the broker)."""
    return BrokerProcess("epmd", [EPMD_BINARY, "-port", str(port), "-address", "127.0.0.1"], host="127.0.0.1",
                         port=port, workdir=workdir, tcp_ready=True, timeout=5.0, env=env, log_name="epmd.log")


class ErlangBrokerProcess(BrokerProcess):
    """A broker whose stop is its vendor command first (a clean shutdown), then the process group
    (BrokerProcess.stop: SIGTERM, SIGKILL to what is left), then its helpers (a private epmd)."""

    def __init__(self, *args: object, stop_command: Sequence[str] = (), stop_env: dict[str, str] | None = None,
                 helpers: Sequence[BrokerProcess] = (), vendor_stop_timeout: float = 30.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stop_command = list(stop_command)
        self.stop_env = stop_env
        self.helpers = list(helpers)
        self.vendor_stop_timeout = vendor_stop_timeout
        self.vendor_stop_output = ""
        self.on_stopped: list[Callable[[], None]] = []  # e.g. remove files the broker's own user owned

    def start(self) -> ErlangBrokerProcess:
        try:
            for helper in self.helpers:
                helper.start()
            super().start()
        except BaseException:
            self.stop()  # the helpers too, whatever got started
            raise
        return self

    def stop(self) -> None:
        # Erlang's port helpers (erl_child_setup, memsup, ...) start sessions of their own, out of
        # reach of the group signal: remember them now, kill whichever outlives the node.
        spawned = descendants(self.pid) if self.pid is not None and self.running else []
        try:
            if self.stop_command and self.running and not self._stopped:
                try:
                    done = subprocess.run(self.stop_command, env=self.stop_env, stdin=subprocess.DEVNULL,
                                          capture_output=True, timeout=self.vendor_stop_timeout, check=False)
                    self.vendor_stop_output = (done.stdout + done.stderr).decode("utf-8", "replace")
                    if done.returncode == 0 and self._popen is not None:
                        # the command returns as the node goes down; give it the moment to exit
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            self._popen.wait(timeout=self.stop_timeout)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    self.vendor_stop_output = str(exc)
            super().stop()
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and any(_alive(*entry) for entry in spawned):
                time.sleep(0.02)
            for pid, started in spawned:
                if _alive(pid, started):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            for helper in self.helpers:
                helper.stop()
            for callback in self.on_stopped:
                callback()


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # fields from 3 on: state, ppid, pgrp, ...


def _alive(pid: int, started: str) -> bool:
    """The process still runs (not a zombie) and is the same one (its start time, not a reused pid)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X") and fields[19] == started


def descendants(root: int) -> list[tuple[int, str]]:
    """Every live descendant of `root` as (pid, start time), from /proc; [] where there is no /proc."""
    if not os.path.isdir("/proc/self"):
        return []
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] not in ("Z", "X"):
                children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child[0])
    return found


def user_ids(user: str) -> tuple[int, int] | None:
    """(uid, gid) of a system user, or None when there is no such user."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for entry in dirs + files:
            os.chown(os.path.join(root, entry), uid, gid)
