"""A fake broker's accept loop for the runner's tests: each connection handled on a thread of its own
by the subclass's `handle`, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time


class FakeBrokerServer:
    def __init__(self) -> None:
        self.connections = 0
        self.accepted_at: list[float] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted_at.append(time.monotonic())
            number = self.connections
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn, number), daemon=True).start()

    def handle(self, conn: socket.socket, number: int) -> None:
        """Serve connection `number` (0 for the first); the subclass's."""
        raise NotImplementedError

    def close(self) -> None:
        self._listener.close()
