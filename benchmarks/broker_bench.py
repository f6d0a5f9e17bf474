"""Benchmark: the reference broker against mosquitto, side by side, on this machine.

    python benchmarks/broker_bench.py              # full run (a few minutes)
    python benchmarks/broker_bench.py --quick      # smaller counts, for a smoke run
    python benchmarks/broker_bench.py --only reference --messages 200000

Measures, for each broker (both started here on free loopback ports, anonymous, same limits):
  - QoS 0 throughput, one publisher -> one subscriber (delivered messages per second)
  - QoS 1 throughput, one publisher -> one subscriber (publisher's PUBLISH acknowledged, subscriber
    acknowledges every delivery; in-flight window 20 on both brokers)
  - fan-out: one QoS 0 publisher -> 100 subscribers on one topic (deliveries per second)
  - RSS of the broker process holding 10,000 idle MQTT connections (minus its RSS before)

The load generator is not the bottleneck: every client is a raw socket in its own process, the
publisher sends packets encoded once with harness.wire in 256 KiB batches, and subscribers count
fixed-size packets without decoding them (QoS 1: they cut the packet id out and answer PUBACKs in
batches). The headroom section measures the same generator against a null sink and the same
reader against a firehose, with no broker in between.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.wire import Connect, Publish, Subscribe, Subscription, Version, encode  # noqa: E402

TOPIC = "bench/topic"
PAYLOAD = b"p" * 64
V = Version.V311
BATCH_BYTES = 256 * 1024
IDLE_AFTER = 3.0  # a subscriber stops counting after this long without data
CTX = mp.get_context("fork")


# -- packets, encoded once ------------------------------------------------------------------------

def publish_bytes(qos: int, packet_id: int = 1) -> bytes:
    return encode(Publish(topic=TOPIC, payload=PAYLOAD, qos=qos, packet_id=packet_id if qos else None), V)


def connect_socket(port: int, client_id: str, keep_alive: int = 0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(encode(Connect(client_id=client_id, keep_alive=keep_alive), V))
    connack = _read_exact(sock, 4)
    if connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"CONNECT refused: {connack.hex()}")
    return sock


def subscribe(sock: socket.socket, qos: int) -> None:
    sock.sendall(encode(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter=TOPIC, qos=qos)]), V))
    suback = _read_exact(sock, 5)
    if suback[0] != 0x90:
        raise RuntimeError(f"no SUBACK: {suback.hex()}")


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return data


# -- workers (separate processes) -----------------------------------------------------------------

def publisher(port: int, qos: int, count: int, go: Any, out: Any) -> None:
    """Send `count` PUBLISH packets in big batches; for QoS 1, drain and count the PUBACKs."""
    sock = connect_socket(port, f"pub{os.getpid()}")
    per_batch = max(1, BATCH_BYTES // len(publish_bytes(qos)))
    if qos == 0:
        batches = [publish_bytes(0) * per_batch]
    else:  # packet ids cycle through 1..65535; the broker acknowledges QoS 1 without keeping them
        ids = list(range(1, 65536))
        packets = [publish_bytes(1, pid) for pid in ids]
        batches = [b"".join(packets[i : i + per_batch]) for i in range(0, len(packets) - per_batch, per_batch)]
    acked = [0]

    def drain() -> None:
        want = count * 4
        got = 0
        while got < want:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        acked[0] = got // 4

    reader = threading.Thread(target=drain, daemon=True)
    if qos:
        reader.start()
    go.wait()
    start = time.monotonic()
    sent = 0
    i = 0
    while sent < count:
        sock.sendall(batches[i % len(batches)])
        sent += per_batch
        i += 1
    sent_at = time.monotonic()
    if qos:
        reader.join(120)
    out.put({"sent": sent, "start": start, "sent_at": sent_at, "end": time.monotonic(), "acked": acked[0]})
    time.sleep(0.5)
    sock.close()


def subscriber(port: int, qos: int, clients: int, ready: Any, out: Any) -> None:
    """Count fixed-size PUBLISH packets on `clients` connections; QoS 1: PUBACK each in batches."""
    size = len(publish_bytes(qos))
    pid_at = size - len(PAYLOAD) - 2
    socks = [connect_socket(port, f"sub{os.getpid()}x{i}") for i in range(clients)]
    for sock in socks:
        subscribe(sock, qos)
        sock.setblocking(False)
    sel = selectors.DefaultSelector()
    rest: dict[socket.socket, bytes] = {}
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
        rest[sock] = b""
    ready.set()
    total = 0  # bytes, or packets for QoS 1
    packets = 0
    first = last = 0.0
    while True:
        events = sel.select(timeout=IDLE_AFTER if first else 120)
        if not events:
            break
        now = time.monotonic()
        if not first:
            first = now
        last = now
        for key, _ in events:
            sock = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(1 << 20)  # type: ignore[attr-defined]
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(sock)
                continue
            if qos == 0:
                total += len(data)
                continue
            buf = rest[sock] + data
            whole = len(buf) - len(buf) % size
            acks = [b"\x40\x02" + buf[i + pid_at : i + pid_at + 2] for i in range(0, whole, size)]
            packets += len(acks)
            rest[sock] = buf[whole:]
            if acks:
                try:
                    sock.setblocking(True)  # type: ignore[attr-defined]
                    sock.sendall(b"".join(acks))  # type: ignore[attr-defined]
                    sock.setblocking(False)  # type: ignore[attr-defined]
                except OSError:  # the firehose hung up
                    sel.unregister(sock)
    received = total // size if qos == 0 else packets
    out.put({"received": received, "first": first, "last": last})
    for sock in socks:
        sock.close()


def idle_clients(port: int, count: int, ready: Any, done: Any, out: Any) -> None:
    """Open `count` MQTT connections (CONNECT / CONNACK, keep alive 0) and hold them until `done`."""
    socks = []
    connect_bytes = [encode(Connect(client_id=f"idle{i}", keep_alive=0), V) for i in range(count)]
    failures = 0
    for start in range(0, count, 500):  # in waves, so the listen backlog never overflows
        wave = []
        for i in range(start, min(count, start + 500)):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.sendall(connect_bytes[i])
                wave.append(sock)
            except OSError:
                failures += 1
        for sock in wave:
            try:
                if _read_exact(sock, 4)[3] == 0:
                    socks.append(sock)
                else:
                    failures += 1
            except OSError:
                failures += 1
    out.put({"connected": len(socks), "failures": failures})
    ready.set()
    done.wait(300)
    for sock in socks:
        sock.close()


# -- generator headroom (no broker) ---------------------------------------------------------------

def null_sink(listener: socket.socket, out: Any) -> None:
    conn, _ = listener.accept()
    conn.recv(1024)  # the CONNECT
    conn.sendall(b"\x20\x02\x00\x00")
    total = 0
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        total += len(data)
    out.put(total)


def firehose(listener: socket.socket, qos: int, seconds: float) -> None:
    """Pretend to be a broker: CONNACK, SUBACK, then PUBLISH packets as fast as the socket takes them."""
    conn, _ = listener.accept()
    conn.recv(1024)
    conn.sendall(b"\x20\x02\x00\x00")
    conn.recv(1024)
    conn.sendall(b"\x90\x03\x00\x01" + bytes([qos]))
    batch = publish_bytes(qos, 7) * (BATCH_BYTES // len(publish_bytes(qos, 7)))
    if qos:
        threading.Thread(target=lambda: [None for _ in iter(lambda: conn.recv(1 << 20), b"")], daemon=True).start()
    end = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while time.monotonic() < end:
            conn.sendall(batch)
    conn.close()


def headroom(count: int) -> dict[str, float]:
    results = {}
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    out: Any = CTX.Queue()
    go = CTX.Event()
    go.set()
    sink = CTX.Process(target=null_sink, args=(listener, out))
    sink.start()
    pub_out: Any = CTX.Queue()
    pub = CTX.Process(target=publisher, args=(port, 0, count, go, pub_out))
    pub.start()
    res = pub_out.get(timeout=300)
    pub.join()
    sink.join()
    results["publisher -> null sink (msg/s)"] = res["sent"] / (res["sent_at"] - res["start"])
    for qos in (0, 1):
        listener2 = socket.create_server(("127.0.0.1", 0))
        source = CTX.Process(target=firehose, args=(listener2, qos, 3.0))
        source.start()
        ready = CTX.Event()
        sub_out: Any = CTX.Queue()
        sub = CTX.Process(target=subscriber, args=(listener2.getsockname()[1], qos, 1, ready, sub_out))
        sub.start()
        res = sub_out.get(timeout=60)
        sub.join()
        source.join()
        results[f"firehose -> QoS {qos} reader (msg/s)"] = res["received"] / max(res["last"] - res["first"], 1e-9)
    return results


# -- brokers --------------------------------------------------------------------------------------

@dataclass
class Broker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    note: str = ""

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("broker did not start listening")


@contextlib.contextmanager
def reference_broker(workdir: Path, loop: str) -> Iterator[Broker]:
    port = free_port()
    config = workdir / "reference.yaml"
    config.write_text(
        f"listeners: [{{host: 127.0.0.1, port: {port}}}]\n"
        "auth: {allow_anonymous: true}\n"
        "limits: {max_connections: 20000, max_inflight: 20, max_queued_messages: 1000}\n"
        "log_level: warning\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(workdir / "reference.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness.broker", "--config", str(config), "--loop", loop],
                                env=env, stderr=log)
    try:
        wait_port(port, proc)
        try:
            import uvloop  # noqa: F401

            used = "uvloop" if loop != "asyncio" else "asyncio"
        except ImportError:
            used = "asyncio"
        yield Broker("reference", proc, port, f"Python {sys.version.split()[0]}, {used}")
    finally:
        stop(proc)


@contextlib.contextmanager
def mosquitto_broker(workdir: Path) -> Iterator[Broker]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_inflight_messages 20\nmax_queued_messages 1000\nmax_connections -1\n"
        "log_dest stderr\nlog_type error\n"
    )
    with open(workdir / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([binary, "-c", str(config)], stderr=log)
    try:
        wait_port(port, proc)
        version = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout
        match = re.search(r"version (\S+)", version)
        yield Broker("mosquitto", proc, port, f"mosquitto {match.group(1) if match else '?'}")
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- measurements ---------------------------------------------------------------------------------

def throughput(port: int, qos: int, count: int, subscribers: int = 1) -> dict[str, float]:
    ready = CTX.Event()
    go = CTX.Event()
    sub_out: Any = CTX.Queue()
    pub_out: Any = CTX.Queue()
    sub = CTX.Process(target=subscriber, args=(port, qos, subscribers, ready, sub_out))
    sub.start()
    if not ready.wait(60):
        raise RuntimeError("subscribers did not get ready")
    pub = CTX.Process(target=publisher, args=(port, qos, count, go, pub_out))
    pub.start()
    time.sleep(0.3)
    go.set()
    p = pub_out.get(timeout=600)
    s = sub_out.get(timeout=600)
    pub.join()
    sub.join()
    expected = p["sent"] * subscribers
    elapsed = max(s["last"] - p["start"], 1e-9)
    return {
        "delivered_per_s": s["received"] / elapsed,
        "published_per_s": p["sent"] / max((p["end"] if qos else p["sent_at"]) - p["start"], 1e-9),
        "loss": 1 - s["received"] / expected,
        "elapsed": elapsed,
    }


def idle_memory(broker: Broker, count: int) -> dict[str, float]:
    before = broker.rss_mb()
    ready = CTX.Event()
    done = CTX.Event()
    out: Any = CTX.Queue()
    proc = CTX.Process(target=idle_clients, args=(broker.port, count, ready, done, out))
    proc.start()
    res = out.get(timeout=300)
    ready.wait(10)
    time.sleep(1.0)  # let the broker settle (allocations after the last CONNACK)
    after = broker.rss_mb()
    done.set()
    proc.join(60)
    return {"connected": res["connected"], "failures": res["failures"], "rss_before": before, "rss_after": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts")
    parser.add_argument("--messages", type=int, help="messages per 1->1 run (default 400000, quick 50000)")
    parser.add_argument("--only", choices=["reference", "mosquitto"])
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (default 10000)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="event loop for the reference broker")
    args = parser.parse_args()
    count = args.messages or (50_000 if args.quick else 400_000)
    fan_count = max(count // 40, 2_000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # brokers inherit it
    if hard < args.idle + 200:
        print(f"warning: fd limit {hard} < {args.idle} idle connections", file=sys.stderr)
    print(f"# broker benchmark: {os.cpu_count()} CPUs, {count} messages of {len(PAYLOAD)} B payload "
          f"(topic {TOPIC!r}), fan-out {fan_count} x 100, {args.idle} idle connections\n")

    room = headroom(count)
    print("## generator headroom (no broker)")
    for key, value in room.items():
        print(f"- {key}: {value:,.0f}")
    print()

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # mosquitto drops to its own user when started as root
        brokers = []
        if args.only != "mosquitto":
            brokers.append(lambda: reference_broker(workdir, args.loop))
        if args.only != "reference":
            brokers.append(lambda: mosquitto_broker(workdir))
        for start in brokers:
            with start() as broker:
                row: dict[str, Any] = {"note": broker.note}
                print(f"## {broker.name} ({broker.note})", flush=True)
                for qos in (0, 1):
                    res = throughput(broker.port, qos, count)
                    row[f"qos{qos}"] = res
                    print(f"- QoS {qos} 1->1: {res['delivered_per_s']:,.0f} msg/s delivered "
                          f"(publisher {res['published_per_s']:,.0f} msg/s, loss {res['loss']:.1%})", flush=True)
                res = throughput(broker.port, 0, fan_count, subscribers=100)
                row["fanout"] = res
                print(f"- QoS 0 fan-out 1->100: {res['delivered_per_s']:,.0f} deliveries/s "
                      f"(loss {res['loss']:.1%})", flush=True)
                mem = idle_memory(broker, args.idle)
                row["idle"] = mem
                print(f"- {mem['connected']} idle connections ({mem['failures']} failed): RSS "
                      f"{mem['rss_before']:.1f} -> {mem['rss_after']:.1f} MB", flush=True)
                rows[broker.name] = row
                print()

    if len(rows) == 2:
        ref, mos = rows["reference"], rows["mosquitto"]
        print("## side by side\n")
        print("| measure | reference | mosquitto | reference / mosquitto |")
        print("| --- | ---: | ---: | ---: |")
        for label, key in (("QoS 0 1->1, msg/s", "qos0"), ("QoS 1 1->1, msg/s", "qos1"),
                           ("QoS 0 fan-out 1->100, deliveries/s", "fanout")):
            a, b = ref[key]["delivered_per_s"], mos[key]["delivered_per_s"]
            print(f"| {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
        a, b = ref["idle"]["rss_after"], mos["idle"]["rss_after"]
        print(f"| RSS with {args.idle} idle connections, MB | {a:.1f} | {b:.1f} | {a / b:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
