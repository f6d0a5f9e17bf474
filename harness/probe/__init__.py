"""`harness probe`: find out what a broker offers, with ordinary well-formed traffic, and draft its profile.

session.py holds the conversation (connections, bounded waits, the record of every step), checks.py
the questions (one function each), draft.py the files written, cli.py the command. `run_probe` runs
the checks in order, the Keep Alive measurement on a thread of its own beside them (it mostly waits),
and stops early, keeping what it found, when the broker stops answering.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.clients.transport import Address
from harness.probe.checks import CHECKS, Draft, KeepaliveCheck, check_protocols
from harness.probe.session import BrokerStopped, ProbeSession, Unreachable
from harness.targets import Account


def run_probe(address: Address, account: Account | None = None,
              progress: Callable[[str], None] = lambda line: None) -> tuple[Draft, ProbeSession, float]:
    """Probe the broker at `address`. Unreachable (and HarnessError for a broker that accepts no
    CONNECT) if nothing could be probed; a broker that stops answering later ends the probe early
    with `draft.stopped` saying why."""
    started = time.monotonic()
    session = ProbeSession(address, account or Account(None, None), progress)
    draft = Draft()
    try:
        _timed(session, draft, "protocols", check_protocols, progress)
        assert draft.version is not None
        keepalive = KeepaliveCheck(session.sibling("keepalive"), draft.version).start()
        try:
            for name, check in CHECKS:
                _timed(session, draft, name, check, progress)
        finally:
            session.check = "keepalive"
            try:
                progress(f"keep alive: {keepalive.join(draft)}")
            finally:
                session.record.extend(keepalive.s.record)
    except BrokerStopped as exc:
        draft.stopped = str(exc)
        progress(f"stopped: {exc}")
    finally:
        session.close_all()
    return draft, session, time.monotonic() - started


def _timed(session: ProbeSession, draft: Draft, name: str, check: Callable[[ProbeSession, Draft], str],
           progress: Callable[[str], None]) -> None:
    session.check = name
    began = time.monotonic()
    result = check(session, draft)
    draft.durations[name] = time.monotonic() - began
    progress(f"{name}: {result}")


__all__ = ["Account", "BrokerStopped", "Draft", "ProbeSession", "Unreachable", "run_probe"]
