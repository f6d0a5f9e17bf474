"""The asyncio layer: listeners, the running broker, clean shutdown.

Transports are a seam: `LISTENER_FACTORIES` maps a listener's `transport` name to a coroutine that
starts serving it. Only `tcp` exists; TLS (an `ssl.SSLContext` on `create_server`) and WebSocket (a
framing protocol in front of `Connection`) plug in here without touching the protocol code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from harness.broker import sessions, transports
from harness.broker.config import BrokerConfig, ListenerConfig
from harness.broker.connection import Connection
from harness.broker.core import Broker

log = logging.getLogger("harness.broker")


async def _serve_tcp(broker: Broker, listener: ListenerConfig) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: Connection(broker, "tcp"), listener.host, listener.port, reuse_address=True, backlog=4096
    )


LISTENER_FACTORIES: dict[str, Callable[[Broker, ListenerConfig], Awaitable[asyncio.AbstractServer]]] = {
    "tcp": _serve_tcp,
    "tls": transports.serve_tls,
    "ws": transports.serve_ws,
    "wss": transports.serve_ws,
}


class BrokerServer:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.broker: Broker | None = None
        self.servers: list[asyncio.AbstractServer] = []
        self.addresses: list[tuple[str, int]] = []

    async def start(self) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        self.broker = Broker(self.config, loop.call_later)
        for listener in self.config.listeners:
            server = await LISTENER_FACTORIES[listener.transport](self.broker, listener)
            self.servers.append(server)
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.addresses.append((host, port))
        return self.addresses

    async def stop(self) -> None:
        """Stop accepting, disconnect every client (5.0: DISCONNECT 0x8B), close listeners."""
        for server in self.servers:
            server.close()
        broker = self.broker
        if broker is not None:
            for conn in list(broker.connections.values()):
                conn.shutdown()
            broker.flush()
        for server in self.servers:
            # Connections that never sent CONNECT are aborted with the process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def stats(self) -> dict[str, Any]:
        broker = self.broker
        if broker is None:
            return {}
        return {"sockets": broker.sockets, "clients": len(broker.connections), "sessions": len(broker.sessions),
                "subscriptions": broker.index.count, "retained": len(broker.retained),
                "dropped_deliveries": sessions.dropped[0]}
