"""The pipeline that keeps scenarios in flight at once (harness.pipeline), with plain functions as jobs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from harness.pipeline import BrokerLock, Job, Pipeline, Throttle

WAIT_S = 5.0  # an upper bound for a step that should happen at once: a hang fails, a pass never waits it


class Recorder:
    """Jobs that note when they start and end, and can be held until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.seen_together: list[set[str]] = []
        self.order: list[str] = []
        self.gates: dict[str, threading.Event] = {}

    def job(self, key: str, alone: bool = False, long: bool = False, held: bool = False, value: object = None) -> Job:
        gate = self.gates.setdefault(key, threading.Event())
        if not held:
            gate.set()

        def work() -> object:
            with self.lock:
                self.running.add(key)
                self.order.append(key)
                self.seen_together.append(set(self.running))
            assert gate.wait(WAIT_S), f"{key} was never released"
            with self.lock:
                self.seen_together.append(set(self.running))
                self.running.discard(key)
            return key if value is None else value

        return Job(key, work, alone=alone, long=long)


def wait_until(condition, timeout: float = WAIT_S) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def test_each_job_gives_its_own_value_or_exception_whatever_order_they_finish_in() -> None:
    recorder = Recorder()
    pipeline = Pipeline(4)

    def fails() -> None:
        raise ValueError("broken")

    pipeline.offer([recorder.job("a", held=True), recorder.job("b"), Job("c", fails)])
    assert pipeline.take("b") == "b"  # b finished while a is still held
    with pytest.raises(ValueError, match="broken"):
        pipeline.take("c")
    recorder.gates["a"].set()
    assert pipeline.take("a") == "a"


def test_no_more_than_width_jobs_run_at_once() -> None:
    recorder = Recorder()
    pipeline = Pipeline(2)
    pipeline.offer([recorder.job(k, held=True) for k in "abcd"])
    wait_until(lambda: len(recorder.running) == 2)
    assert recorder.running == {"a", "b"}
    recorder.gates["a"].set()
    assert pipeline.take("a") == "a"
    wait_until(lambda: recorder.running == {"b", "c"})
    for key in "bcd":
        recorder.gates[key].set()
        assert pipeline.take(key) == key
    assert max(len(together) for together in recorder.seen_together) == 2


def test_an_alone_job_runs_with_nothing_else_and_before_the_others_it_knows_of() -> None:
    recorder = Recorder()
    pipeline = Pipeline(8)
    pipeline.offer([recorder.job("a"), recorder.job("b"), recorder.job("x", alone=True), recorder.job("c")])
    for key in "abxc":
        assert pipeline.take(key) == key
    assert recorder.order[0] == "x"
    assert all(together == {"x"} for together in recorder.seen_together if "x" in together)


def test_an_alone_job_offered_later_waits_for_the_running_ones_and_holds_back_the_rest() -> None:
    recorder = Recorder()
    pipeline = Pipeline(8)
    pipeline.offer([recorder.job("a", held=True)])
    wait_until(lambda: recorder.running == {"a"})
    pipeline.offer([recorder.job("x", alone=True), recorder.job("b")])
    assert recorder.running == {"a"}  # x waits for a; b waits for x
    recorder.gates["a"].set()
    for key in "axb":
        assert pipeline.take(key) == key
    assert recorder.order == ["a", "x", "b"]
    assert all(together == {"x"} for together in recorder.seen_together if "x" in together)


def test_long_jobs_start_before_short_ones_within_reach() -> None:
    recorder = Recorder()
    pipeline = Pipeline(1 + 1)
    pipeline.offer([recorder.job("short1", held=True), recorder.job("short2", held=True), recorder.job("long", long=True, held=True)])
    wait_until(lambda: len(recorder.running) == 2)
    assert recorder.running == {"long", "short1"}
    for key in ("short1", "short2", "long"):
        recorder.gates[key].set()
        assert pipeline.take(key) == key


def test_the_job_pytest_waits_for_starts_first_even_beyond_the_lookahead() -> None:
    recorder = Recorder()
    pipeline = Pipeline(2)
    pipeline.offer([recorder.job(f"j{i}") for i in range(40)])  # far more than width x (1 + lookahead) ahead
    assert pipeline.take("j39") == "j39"
    for i in range(39):
        assert pipeline.take(f"j{i}") == f"j{i}"


def test_width_one_runs_each_job_on_the_callers_thread_when_it_is_taken() -> None:
    threads: list[threading.Thread] = []
    pipeline = Pipeline(1)
    pipeline.offer([Job("a", lambda: threads.append(threading.current_thread()))])
    assert threads == []  # nothing runs ahead
    pipeline.take("a")
    assert threads == [threading.current_thread()]


def test_jobs_another_worker_took_back_are_dropped_unless_already_started() -> None:
    recorder = Recorder()
    pipeline = Pipeline(1 + 1)
    pipeline.offer([recorder.job("a", held=True), recorder.job("b", held=True), recorder.job("c")])
    wait_until(lambda: recorder.running == {"a", "b"})
    pipeline.offer([], upcoming={"a", "b"})  # c went to another worker
    assert not pipeline.knows("c") and pipeline.knows("a")
    recorder.gates["a"].set()
    recorder.gates["b"].set()
    assert pipeline.take("a") == "a" and pipeline.take("b") == "b"
    assert "c" not in recorder.order


def test_a_closed_pipeline_starts_nothing_more() -> None:
    recorder = Recorder()
    pipeline = Pipeline(1 + 1)
    pipeline.offer([recorder.job("a", held=True), recorder.job("b", held=True), recorder.job("c")])
    wait_until(lambda: len(recorder.running) == 2)
    pipeline.close()
    recorder.gates["a"].set()
    recorder.gates["b"].set()
    wait_until(lambda: not recorder.running)
    assert "c" not in recorder.order
    with pytest.raises(KeyError):
        pipeline.take("c")


def test_the_throttle_lowers_the_limit_while_the_process_is_busy_and_raises_it_after() -> None:
    now, cpu = [0.0], [0.0]
    throttle = Throttle(64, clock=lambda: now[0], cpu=lambda: cpu[0], lag=lambda: 0.0)
    assert throttle.limit() == 64
    for _ in range(20):  # a full core of CPU for every second of wall clock
        now[0] += Throttle.SAMPLE_S
        cpu[0] += Throttle.SAMPLE_S
        throttle.limit()
    assert throttle.limit() == Throttle.FLOOR
    for _ in range(20):  # waiting on the network: hardly any CPU
        now[0] += Throttle.SAMPLE_S
        cpu[0] += Throttle.SAMPLE_S * 0.1
        throttle.limit()
    assert throttle.limit() == 64


def test_the_throttle_lowers_the_limit_while_threads_wake_up_late() -> None:
    """Other processes (xdist workers, the broker) can starve this one while it uses little CPU itself."""
    now, late = [0.0], [0.5]
    throttle = Throttle(64, clock=lambda: now[0], cpu=lambda: 0.0, lag=lambda: late[0])
    for _ in range(20):
        now[0] += Throttle.SAMPLE_S
        throttle.limit()
    assert throttle.limit() == Throttle.FLOOR
    late[0] = 0.001
    for _ in range(20):
        now[0] += Throttle.SAMPLE_S
        throttle.limit()
    assert throttle.limit() == 64


def test_the_wake_up_lag_is_small_on_an_idle_process_and_reset_by_each_reading() -> None:
    from harness.pipeline import WakeUpLag

    lag = WakeUpLag()
    threading.Event().wait(0.2)
    assert 0.0 <= lag.take() < 1.0
    assert lag.take() <= 0.2


def test_the_broker_lock_keeps_an_exclusive_holder_alone_and_lets_it_in_ahead_of_later_shared_ones(tmp_path: Path) -> None:
    """Each holder opens the files itself, as each xdist worker does: flock conflicts between them."""
    lock = BrokerLock(tmp_path)
    events: list[str] = []
    release_first = threading.Event()

    def hold(name: str, exclusive: bool, release: threading.Event | None = None) -> None:
        with lock.held(exclusive):
            events.append(f"{name} in")
            if release is not None:
                assert release.wait(WAIT_S)
            events.append(f"{name} out")

    first = threading.Thread(target=hold, args=("shared1", False, release_first))
    first.start()
    wait_until(lambda: "shared1 in" in events)
    writer = threading.Thread(target=hold, args=("alone", True))
    writer.start()
    wait_until(lambda: (tmp_path / "broker").exists())
    threading.Event().wait(0.2)  # let the writer queue at the lock (nothing passes meanwhile)
    later = threading.Thread(target=hold, args=("shared2", False))
    later.start()
    threading.Event().wait(0.2)
    assert events == ["shared1 in"]  # the writer waits for shared1, shared2 waits behind the writer
    release_first.set()
    for thread in (first, writer, later):
        thread.join(WAIT_S)
    assert events == ["shared1 in", "shared1 out", "alone in", "alone out", "shared2 in", "shared2 out"]


def test_without_a_folder_the_broker_lock_locks_nothing() -> None:
    lock = BrokerLock(None)
    with lock.held(exclusive=True), lock.held(exclusive=True):
        pass
