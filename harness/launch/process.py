"""Start a broker process, wait until it serves, stop it with everything it spawned.

Generic: nothing here knows a particular broker. A launcher builds the command line and the
config files, then hands them to `BrokerProcess`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.launch.base import LaunchError, PortInUseError

# A leading epoch or date/time stamp says nothing about what went wrong: dropped from messages.
_TIMESTAMP = re.compile(r"^\s*(?:\d{9,}(?:\.\d+)?:\s*|\[?\d{4}-\d\d-\d\d[T ][\d:.,]+\S*\]?\s*)")
_PORT_IN_USE = re.compile(r"address already in use|EADDRINUSE|port is already", re.IGNORECASE)
_POLL_S = 0.005

# Processes still running when the interpreter exits (a test that forgot to stop its broker, a
# KeyboardInterrupt between start and stop) are stopped then, so no run leaves a broker behind.
# Strong references on purpose: a handle dropped without stop() must not take the record with it.
_live: set[BrokerProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_live):
        with contextlib.suppress(Exception):
            proc.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago. The caller may still lose it to a race: see PortInUseError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group.

    A zombie still answers kill(pid, 0), so a check with signals alone would wait on processes that
    are already dead but not yet reaped by whatever adopted them; /proc tells the states apart.
    """
    if not os.path.isdir("/proc/self"):  # not Linux: signals are the only probe there is
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # comm (field 2) may hold spaces and parentheses: split after its closing parenthesis.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def meaningful_line(log: str, ignore: re.Pattern[str] | None = None) -> str:
    """The last log line that says something: timestamps stripped, blank and `ignore`d lines skipped."""
    for raw in reversed(log.splitlines()):
        line = _TIMESTAMP.sub("", raw).strip()
        if line and not (ignore and ignore.search(line)):
            return line
    return "(no log output)"


class BrokerProcess:
    """One broker process in its own session (so its whole process group can be signalled).

    `start()` returns once the broker serves: a line of its output matched `ready_pattern`, or (if
    `tcp_ready`) a TCP connect to host:port succeeded — whichever comes first. It raises
    LaunchError when the process exits first or the timeout passes, and leaves nothing running then.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        host: str,
        port: int,
        workdir: Path,
        ready_pattern: str | re.Pattern[str] | None = None,
        tcp_ready: bool = True,
        timeout: float = 10.0,
        stop_timeout: float = 5.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_name: str = "broker.log",
        ignore_lines: re.Pattern[str] | None = None,
    ) -> None:
        if ready_pattern is None and not tcp_ready:
            raise ValueError("a BrokerProcess needs a ready_pattern, tcp_ready, or both")
        self.name = name
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.workdir = Path(workdir)
        self.log_path = self.workdir / log_name
        self.ready_pattern = re.compile(ready_pattern) if isinstance(ready_pattern, str) else ready_pattern
        self.tcp_ready = tcp_ready
        self.timeout = timeout
        self.stop_timeout = stop_timeout
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ignore_lines = ignore_lines
        self.ready_match: re.Match[str] | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._stopped = False

    # -- state -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def last_log_line(self) -> str:
        return meaningful_line(self.log_text(), self.ignore_lines)

    # -- start -------------------------------------------------------------------------------

    def start(self) -> BrokerProcess:
        if self._popen is not None:
            raise LaunchError(f"{self.name}: already started (pid {self._popen.pid})")
        binary = self.argv[0]
        if os.sep in binary and not os.access(binary, os.X_OK):
            raise LaunchError(f"{self.name}: binary {binary} not found or not executable")
        if port_accepts(self.host, self.port):
            # Someone else serves there: a TCP probe would mistake them for our broker.
            raise PortInUseError(f"{self.name}: {self.host}:{self.port} is already in use by another process")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=self.env,
                    start_new_session=True,  # own process group: stop() signals it all at once
                )
            except OSError as exc:
                raise LaunchError(f"{self.name}: cannot run {binary}: {exc.strerror or exc}") from exc
        _live.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._popen is not None
        deadline = time.monotonic() + self.timeout
        while True:
            if self.ready_pattern is not None:
                self.ready_match = self._search_log(self.ready_pattern)
                if self.ready_match is not None:
                    return
            code = self._popen.poll()
            if code is not None:
                self._raise_exited(code)
            if self.tcp_ready and port_accepts(self.host, self.port, timeout=0.1):
                # The port was free when start() checked; a process that took it since would fool
                # this probe, so launchers whose broker prints a reliable line prefer tcp_ready=False.
                if self._popen.poll() is None:
                    return
                continue
            if time.monotonic() >= deadline:
                raise LaunchError(
                    f"{self.name}: not ready on {self.host}:{self.port} after {self.timeout:g} s; "
                    f"last log line: {self.last_log_line()} (log: {self.log_path})"
                )
            time.sleep(_POLL_S)

    def _search_log(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        # Logs at startup are a few hundred bytes: rereading the file is cheaper than tracking offsets.
        for line in self.log_text().splitlines():
            match = pattern.search(line)
            if match:
                return match
        return None

    def _raise_exited(self, code: int) -> None:
        text = self.log_text()
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        message = f"{self.name}: {how} at startup: {meaningful_line(text, self.ignore_lines)} (log: {self.log_path})"
        raise (PortInUseError if _PORT_IN_USE.search(text) else LaunchError)(message)

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after stop_timeout. Idempotent."""
        if self._popen is None or self._stopped:
            return
        self._stopped = True
        _live.discard(self)
        pgid = self._popen.pid  # start_new_session: the leader's pid is the group id
        self._signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            # Reap the leader first (so it does not linger as a zombie member); only then is the
            # /proc scan for the rest of the group worth its cost.
            if self._popen.poll() is not None and not group_members(pgid):
                break
            time.sleep(_POLL_S)
        else:
            self._signal_group(pgid, signal.SIGKILL)
        try:
            self._popen.wait(timeout=max(self.stop_timeout, 1.0))
        except subprocess.TimeoutExpired as exc:  # only an uninterruptible (D-state) process gets here
            raise LaunchError(f"{self.name}: pid {pgid} survived SIGKILL") from exc
        # Helpers that were still exiting when the leader went: make sure none outlives us.
        deadline = time.monotonic() + 1.0
        while group_members(pgid) and time.monotonic() < deadline:
            self._signal_group(pgid, signal.SIGKILL)
            time.sleep(_POLL_S)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        # ProcessLookupError: the group is already empty. PermissionError: on macOS a group of
        # zombies answers EPERM. Both mean there is nothing left to signal.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> BrokerProcess:
        if self._popen is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
