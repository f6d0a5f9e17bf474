"""What every launcher does with its listeners: certificates, free ports with a retry, the endpoint map."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.launch.base import (
    LISTENER_KINDS,
    WS_PATH,
    Account,
    LaunchRequest,
    PortInUseError,
    RunningBroker,
    ServedEndpoint,
)
from harness.launch.process import BrokerProcess, free_port

# A free port can be taken by another process between free_port() and the broker's bind: retry on new ones.
PORT_ATTEMPTS = 3


def pki_for(request: LaunchRequest, server_days: int | None = None) -> Any:
    """Certificates for this run under workdir/certs when a TLS listener is asked for, else None.
    `server_days`: see make_pki (a broker that refuses its default validity)."""
    if not any(LISTENER_KINDS[kind] in ("tls", "wss") for kind in request.transports):
        return None
    from harness.certs import make_pki  # cryptography is only imported when TLS is used

    return make_pki(request.workdir / "certs", server_days)


def served_certificate(pki: Any, kind: str) -> Any:
    """The certificate pair (cert, key) a TLS listener of `kind` presents: outside its validity for
    tls-expired and tls-not-yet-valid, else the run's server certificate."""
    return {"tls-expired": pki.expired, "tls-not-yet-valid": pki.not_yet_valid}.get(kind, pki.server)


def loopback_process(
    request: LaunchRequest, name: str, argv: Sequence[str], port: int, *,
    process_type: type[BrokerProcess] = BrokerProcess, **options: Any,
) -> BrokerProcess:
    """The broker's process, to serve on 127.0.0.1:`port` within the request's start-up time, its log
    in the request's workdir; `options` as BrokerProcess (or `process_type`) takes them."""
    return process_type(name, argv, host="127.0.0.1", port=port, workdir=request.workdir, timeout=request.timeout, **options)


def start_on_free_ports(
    request: LaunchRequest, prepare: Callable[[int, dict[str, int]], BrokerProcess]
) -> tuple[BrokerProcess, int, dict[str, int]]:
    """Start the process `prepare(main_port, ports_by_listener)` builds (it writes the config for those
    ports); on a port taken meanwhile, try again with new ones, unless the caller fixed the port."""
    port = request.port
    for attempt in range(1, PORT_ATTEMPTS + 1):
        chosen = port if port is not None else free_port()
        ports = {kind: chosen if kind == "tcp" else free_port() for kind in request.transports}
        process = prepare(chosen, ports)
        try:
            process.start()
        except PortInUseError:
            if port is not None or attempt == PORT_ATTEMPTS:
                raise
            continue
        return process, chosen, ports
    raise AssertionError("unreachable")  # the loop returns or raises


def served_endpoints(ports: Mapping[str, int], host: str = "127.0.0.1") -> dict[str, ServedEndpoint]:
    return {
        kind: ServedEndpoint(kind, LISTENER_KINDS[kind], host, number, WS_PATH if LISTENER_KINDS[kind] in ("ws", "wss") else "")
        for kind, number in ports.items()
    }


def running_broker(
    name: str,
    proc: BrokerProcess,
    port: int,
    ports: Mapping[str, int],
    *,
    accounts: Mapping[str, Account],
    pki: Any,
    version: str | None,
) -> RunningBroker:
    """What every launcher returns: the broker process it started on loopback, its endpoints and accounts."""
    return RunningBroker(
        name=name,
        host="127.0.0.1",
        port=port,
        version=version,
        log_path=proc.log_path,
        accounts=dict(accounts),
        process=proc,
        endpoints=served_endpoints(ports),
        pki=pki,
    )
