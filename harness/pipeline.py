"""Scenarios in flight at once inside one pytest process, so their timer waits overlap.

pytest runs one test after another; a scenario mostly waits on the broker (a Keep Alive, a will
delay). The plugin offers the pipeline the scenarios still to come, in the order pytest will run
them; the pipeline runs up to `width` of them at a time, each on a thread of its own (the runner is
blocking and single-threaded per scenario), and each test then takes its own scenario's result in
the usual order. Reports, Allure steps and pcaps are written from the result, on pytest's thread.

A job marked `alone` needs the broker to itself: nothing else starts while one waits or runs, and
the pipeline runs those it knows of before the others (one drain instead of one per alone job).
Across xdist workers the same holds through `BrokerLock`, a file lock every worker of the run
shares: each job holds it shared, an alone job holds it exclusively.

Nothing here knows pytest or MQTT: a job is a key, a flag and a function.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Scenarios in flight per process by default: most of their time is waiting, so many more than cores.
DEFAULT_WIDTH = 128
# File descriptors one scenario in flight may hold at most: a few connections, paho's wake-up pipes.
DESCRIPTORS_PER_JOB = 16
# How many finished results may wait for pytest beyond the running ones, per unit of width.
LOOKAHEAD_PER_WIDTH = 4


@dataclass(eq=False)
class Job:
    key: str
    work: Callable[[], Any]
    alone: bool = False
    long: bool = False  # expected to take long (it waits on a timer): started before the short ones
    value: Any = None
    error: BaseException | None = None


class BrokerLock:
    """Shared for every job, exclusive for an alone one, across the processes of one run.

    Two flock(2) files: `turnstile` makes it writer-preferring (an alone job waiting for the lock
    stops new shared holders, or a busy worker would keep it out for ever), `broker` is the lock.
    Without a folder (no xdist) it locks nothing: the pipeline alone orders one process's jobs.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def held(self, exclusive: bool) -> Iterator[None]:
        if self.folder is None:
            yield
            return
        turnstile = os.open(self.folder / "turnstile", os.O_RDWR | os.O_CREAT, 0o600)
        broker = os.open(self.folder / "broker", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            fcntl.flock(broker, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if not exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            yield
        finally:
            os.close(broker)  # closing releases the locks
            os.close(turnstile)


class WakeUpLag:
    """How late a thread that asked to wake up got to run: the delay a thread whose packet has arrived
    would see, whether the interpreter lock or the machine's other processes held it up."""

    TICK_S = 0.02

    def __init__(self) -> None:
        self._worst = 0.0
        threading.Thread(target=self._tick, name="pipeline wake-up lag", daemon=True).start()

    def _tick(self) -> None:
        while True:
            asked = time.monotonic()
            time.sleep(self.TICK_S)
            self._worst = max(self._worst, time.monotonic() - asked - self.TICK_S)

    def take(self) -> float:
        """The worst lateness since the last call."""
        worst, self._worst = self._worst, 0.0
        return worst


class Throttle:
    """How many jobs may run now: the width, less while this process is short of CPU.

    The jobs share one interpreter lock and the machine's cores. When their work (TLS handshakes,
    paho's threads, thousands of packets) or other processes (xdist workers, the broker) keep them
    busy, a thread whose packet has arrived waits its turn behind all the others, and a broker's prompt
    CONNACK would look 3 s late: the verdict would depend on the load. So every SAMPLE_S: if this
    process used more than BUSY of a core, or a thread asking to wake up ran more than LATE_S late,
    fewer jobs may start (down to FLOOR); otherwise the limit grows back to the width."""

    SAMPLE_S = 0.25
    BUSY = 0.8
    LATE_S = 0.05
    FLOOR = 2

    def __init__(self, width: int, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time, lag: Callable[[], float] | None = None) -> None:
        self.width = width
        self.allowed = width
        self._clock, self._cpu = clock, cpu
        self._lag = lag if lag is not None else (WakeUpLag().take if width > 1 else lambda: 0.0)
        self._at, self._used = clock(), cpu()

    def limit(self) -> int:
        now = self._clock()
        if now - self._at >= self.SAMPLE_S:
            used = self._cpu()
            busy = (used - self._used) / (now - self._at)
            if busy > self.BUSY or self._lag() > self.LATE_S:
                self.allowed = max(self.FLOOR, int(self.allowed * 0.7))
            else:
                self.allowed = min(self.width, self.allowed + max(1, self.width // 8))
            self._at, self._used = now, used
        return self.allowed


class Pipeline:
    def __init__(self, width: int, lock: BrokerLock | None = None, throttle: Throttle | None = None) -> None:
        if width < 1:
            raise ValueError("width must be 1 or more")
        self.width = width
        self.lock = lock or BrokerLock(None)
        self.throttle = throttle or Throttle(width)
        self._pending: dict[str, Job] = {}  # offered, not started, in the order offered
        self._running: dict[str, Job] = {}
        self._finished: dict[str, Job] = {}  # done, not yet taken
        self._alone_pending = 0
        self._wanted: str | None = None  # the job pytest waits for: it starts first
        self._closed = False
        self._condition = threading.Condition()

    # -- what pytest's thread calls ---------------------------------------------------------------

    def offer(self, jobs: Iterable[Job], upcoming: set[str] | None = None) -> None:
        """Jobs still to come, in pytest's order. Pending jobs not in `upcoming` (when given) are
        dropped: under xdist another worker took them back."""
        with self._condition:
            if upcoming is not None:
                for key in [k for k in self._pending if k not in upcoming]:
                    self._alone_pending -= self._pending.pop(key).alone
            for job in jobs:
                if job.key not in self._pending and job.key not in self._running and job.key not in self._finished:
                    self._pending[job.key] = job
                    self._alone_pending += job.alone
            self._start_what_fits()

    def knows(self, key: str) -> bool:
        with self._condition:
            return key in self._pending or key in self._running or key in self._finished

    def take(self, key: str) -> Any:
        """The job's value (or its exception raised), once it has run; it must have been offered."""
        if self.width == 1:
            job = self._pending.pop(key)
            self._alone_pending -= job.alone
            self._run(job, notify=False)  # today's behaviour: on pytest's own thread, one at a time
        else:
            with self._condition:
                if not (key in self._pending or key in self._running or key in self._finished):
                    raise KeyError(f"{key} was never offered")
                self._wanted = key
                self._start_what_fits()
                while key not in self._finished:
                    if self._closed:
                        raise RuntimeError("the pipeline was closed")
                    self._condition.wait(Throttle.SAMPLE_S)
                    self._start_what_fits()  # the throttle may allow more by now
                self._wanted = None
                job = self._finished.pop(key)
                self._start_what_fits()
        if job.error is not None:
            raise job.error
        return job.value

    def close(self) -> None:
        """No more starts; jobs still running finish on their own (their results are not wanted)."""
        with self._condition:
            self._closed = True
            self._pending.clear()
            self._finished.clear()

    # -- scheduling ---------------------------------------------------------------------------------

    def _start_what_fits(self) -> None:
        if self._closed or self.width == 1:
            return
        if any(j.alone for j in self._running.values()):
            return
        if self._alone_pending:
            if not self._running:
                self._start(next(j for j in self._pending.values() if j.alone))
            return  # let the running ones drain first
        width = min(self.width, self.throttle.limit())
        if self._wanted in self._pending and len(self._running) < width:
            self._start(self._pending[self._wanted])  # whatever the lookahead: pytest waits for it
        limit = self.width * (1 + LOOKAHEAD_PER_WIDTH)
        while self._pending and len(self._running) < width and len(self._running) + len(self._finished) < limit:
            # The long ones of what is in reach first: the run then ends near the longest one's end.
            window = itertools.islice(self._pending.values(), limit - len(self._running) - len(self._finished))
            first = next(iter(self._pending.values()))
            self._start(next((j for j in window if j.long), first))

    def _start(self, job: Job) -> None:
        del self._pending[job.key]
        self._alone_pending -= job.alone
        self._running[job.key] = job
        threading.Thread(target=self._run, args=(job,), name=f"scenario {job.key}", daemon=True).start()

    def _run(self, job: Job, notify: bool = True) -> None:
        try:
            with self.lock.held(exclusive=job.alone):
                job.value = job.work()
        except BaseException as exc:  # noqa: BLE001 - handed to pytest's thread, which raises it
            job.error = exc
        if not notify:
            return
        with self._condition:
            self._running.pop(job.key, None)
            if not self._closed:
                self._finished[job.key] = job
            self._start_what_fits()
            self._condition.notify_all()


def width_for_descriptors(width: int) -> int:
    """`width`, or less where the process may not open enough files for that many scenarios: raise the soft
    limit to the hard one first (a shell's default of 1024 is a soft limit, there to be raised)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return width
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = width * DESCRIPTORS_PER_JOB + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY:
        return width
    return max(1, min(width, (soft - 256) // DESCRIPTORS_PER_JOB))
