"""`python -m harness.broker --config FILE [options]`: run the reference broker.

Options override the file. Logs go to stderr; once every listener is bound, one line containing
`ready` and each `host:port` is printed there. SIGTERM or SIGINT: close listeners, disconnect
clients, exit 0. A bad config file: one error line naming the file and field, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from harness.broker.config import BrokerConfig, ConfigError, load_config, parse_listen
from harness.broker.personalities import PERSONALITIES

log = logging.getLogger("harness.broker")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.broker", description="The reference MQTT broker.")
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML config file")
    parser.add_argument("--listen", "-l", action="append", metavar="HOST:PORT",
                        help="listen here instead of the file's listeners (repeatable; port 0: any free port)")
    parser.add_argument("--personality", "-p", help=f"one of: {', '.join(sorted(PERSONALITIES))}")
    parser.add_argument("--allow-anonymous", action="store_true", default=None,
                        help="accept clients without a user name")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: info")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="event loop: uvloop if installed (auto), or force one")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> BrokerConfig:
    config = load_config(args.config)
    if args.listen:
        config.listeners = [parse_listen(text) for text in args.listen]
    if args.personality:
        if args.personality not in PERSONALITIES:
            raise ConfigError(f"--personality {args.personality!r}: unknown (known: {', '.join(sorted(PERSONALITIES))})")
        config.personality = args.personality
    if args.allow_anonymous:
        config.auth.allow_anonymous = True
    if args.log_level:
        config.log_level = args.log_level.upper()
    return config


async def _run(config: BrokerConfig) -> int:
    from harness.broker.server import BrokerServer

    server = BrokerServer(config)
    try:
        addresses = await server.start()
    except OSError as exc:
        # The launcher recognises "address already in use" and retries on another port.
        log.error("cannot listen: %s", exc.strerror or exc)
        await server.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    listening = " ".join(f"{host}:{port}" for host, port in addresses)
    print(f"harness.broker ready personality={config.personality} listening {listening}", file=sys.stderr, flush=True)
    await stop.wait()
    log.info("shutting down: %s", server.stats())
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _arguments(argv)
        config = build_config(args)
    except ConfigError as exc:
        print(f"harness.broker: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.loop != "asyncio":
        try:
            import uvloop  # optional: faster I/O when installed
        except ImportError:
            if args.loop == "uvloop":
                print("harness.broker: --loop uvloop: uvloop is not installed", file=sys.stderr)
                return 2
        else:
            return uvloop.run(_run(config))
    return asyncio.run(_run(config))


if __name__ == "__main__":
    sys.exit(main())
