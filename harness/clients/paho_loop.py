"""One paho-mqtt client's network thread, driven through paho's public external-loop API.

Not paho's `loop_start()`: its thread waits in `select.select()`, which cannot watch a descriptor
numbered 1024 or above (FD_SETSIZE). It raises ValueError there, paho's `_loop` turns that into
"connection lost" without calling on_disconnect, and the thread ends silently: the CONNACK is never
read and the step times out. A process with a hundred scenarios in flight holds well over a thousand
descriptors, so which paho connections broke depended on the load (47 in one CI run, none in the next).

Here a `selectors` selector (epoll on Linux: no such limit) watches paho's socket and a wake-up
socket pair; paho is told to want writing through `on_socket_register_write` (which also stops it
writing from the caller's thread), and the thread calls `loop_read`, `loop_write` and `loop_misc` as
paho's own loop would: reads when readable (or when TLS holds decrypted bytes already read), writes while paho has packets queued, and its keep-alive bookkeeping at least once a second.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

# paho's own loop runs loop_misc (keep-alive PINGREQ, the PINGRESP deadline) at least this often.
MISC_INTERVAL_S = 1.0
# How long stopping waits for queued packets (a DISCONNECT the scenario sent) to be written.
FLUSH_S = 1.0


class PahoNetworkThread:
    def __init__(self, client: mqtt.Client, name: str, on_failure: Callable[[BaseException], None]) -> None:
        self._client = client
        self._name = name
        self._on_failure = on_failure  # the thread itself failed: the connection is reported closed
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._abort = False
        self._thread: threading.Thread | None = None
        client.on_socket_register_write = self._wake

    def _wake(self, *_: Any) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed (stopped)
            self._wake_w.send(b"\0")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"paho {self._name}", daemon=True)
        self._thread.start()

    def stop(self, abort: bool, timeout: float) -> None:
        """Ends the thread: after writing what paho still has queued (unless `abort`), or once the
        connection is closed. Waits at most `timeout` for it (a callback may be waiting on the scenario)."""
        self._abort = abort
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close_wake_pair()

    def _close_wake_pair(self) -> None:
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - a silent end of this thread is what the module is here to prevent
            sock = self._client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
            self._on_failure(exc)

    def _loop(self) -> None:
        client = self._client
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        watched: tuple[Any, int] | None = None  # paho's socket and the events it is watched for
        flush_until: float | None = None
        try:
            while True:
                sock = client.socket()
                if sock is None:
                    return  # closed: by paho (EOF, error, DISCONNECT written) or by the scenario
                if self._stopping:
                    if self._abort or not client.want_write():
                        return
                    flush_until = flush_until or time.monotonic() + FLUSH_S
                    if time.monotonic() > flush_until:
                        return
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.want_write() else 0)
                if watched is None or watched[0] is not sock:
                    selector.register(sock, events)
                    watched = (sock, events)
                elif watched[1] != events:
                    selector.modify(sock, events)
                    watched = (sock, events)
                buffered = sock.pending() if hasattr(sock, "pending") else 0  # TLS records, WebSocket frames
                readable = buffered > 0
                for key, mask in selector.select(0 if buffered else MISC_INTERVAL_S):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif mask & selectors.EVENT_READ:
                        readable = True
                if readable and client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                    continue  # paho closed the socket and reported it (on_disconnect)
                if client.socket() is not None and client.want_write() and client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                    continue
                if client.socket() is not None:
                    client.loop_misc()
        finally:
            selector.close()
            if self._stopping:
                self._close_wake_pair()
