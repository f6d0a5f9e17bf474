"""The preflight: before the first scenario, the target must serve a well-behaved client.

For each protocol version the target's profile claims, one connection with the run's default
account completes CONNECT/CONNACK 0 and PINGREQ/PINGRESP (harness.liveness). If the target is down,
refuses the account, resets, stays silent or answers bytes that do not decode, the run stops with
one line naming the target and what it saw, and exit code PREFLIGHT_FAILED: 492 scenarios failing
(or a few passing, on a broker that closes everything) would say less, later. `--no-preflight`
skips it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.liveness import check_alive

if TYPE_CHECKING:
    from harness.targets import TargetSession

# pytest's own codes are 0-5; this one says "the target could not be used at all".
PREFLIGHT_FAILED = 6
PREFLIGHT_TIMEOUT_S = 5.0
# After PINGRESP, how long a fresh client that subscribed to nothing must get nothing.
QUIET_S = 0.5


def preflight(session: TargetSession, timeout: float = PREFLIGHT_TIMEOUT_S) -> str | None:
    """None if the target serves each claimed protocol version; otherwise the one line to stop with.

    A launched broker whose software is missing passes: its scenarios are skipped with that reason."""
    from harness.targets import TargetNotInstalled

    name = session.spec.name
    try:
        endpoint = session.endpoint(session.run_endpoints[0] if session.run_endpoints else None)
    except TargetNotInstalled:
        return None
    except HarnessError as exc:
        return f"preflight: target {name} is not usable: {exc}"
    account = endpoint.accounts.get("default")
    versions = sorted(session.profile.protocols)
    # One connection per version at once: each waits out the quiet window, which need not add up.
    with ThreadPoolExecutor(max_workers=max(len(versions), 1)) as pool:
        problems = list(pool.map(lambda version: check_alive(endpoint.address, version, account, timeout, quiet=QUIET_S),
                                 versions))
    problem = next((p for p in problems if p is not None), None)  # the lowest version's, as before
    return None if problem is None else f"preflight: target {name} is not usable: {problem}"
