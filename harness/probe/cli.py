"""`harness probe URL | --target NAME`: probe a broker and write a draft profile, a targets entry and a record."""

from __future__ import annotations

import argparse
import datetime
import re
import signal
import sys
from pathlib import Path
from typing import Any

from harness.clients.transport import Address
from harness.errors import HarnessError
from harness.probe import run_probe
from harness.probe.draft import write
from harness.targets import Account

USAGE = """harness probe URL [--user U --password P] [--out DIR] [--name NAME]
       harness probe --target NAME [--targets-file FILE] [--out DIR]

Connects with ordinary, well-formed traffic only and finds which protocol versions the broker
accepts, its ClientId rules, what a 5.0 CONNACK announces, QoS 1 and 2, retain, will, persistent
sessions, messages in flight, subscription features, $SYS, size limits and Keep Alive enforcement.
Writes DIR/NAME.yaml (a draft profile, each value commented with its evidence), DIR/targets.yaml (an
entry that uses it) and DIR/probe.json (every step). Then: pytest --targets-file DIR/targets.yaml --target NAME"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness probe", usage=USAGE, add_help=True)
    parser.add_argument("url", nargs="?", help="mqtt://, mqtts://, ws:// or wss:// URL (user info allowed)")
    parser.add_argument("--target", help="a targets-file entry instead of a URL (a launched one is started)")
    parser.add_argument("--targets-file", help="the targets file to read --target from (default: ./targets.yaml)")
    parser.add_argument("--user", help="user name for CONNECT")
    parser.add_argument("--password", help="password for CONNECT (better: in the URL's user info or an env variable)")
    parser.add_argument("--out", help="folder for the files (default: probe-NAME)")
    parser.add_argument("--name", help="the drafted profile's and target's name (default: probe-HOST-PORT)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # A stop from outside (CI's timeout, kill) still stops the broker a --target launched.
    signal.signal(signal.SIGTERM, _interrupt)
    if bool(args.url) == bool(args.target):
        print("harness probe: give a broker URL or --target NAME (one of them)", file=sys.stderr)
        return 2
    if args.password is not None and args.user is None:
        print("harness probe: --password needs --user (a 3.x CONNECT cannot carry a password without a user name)", file=sys.stderr)
        return 2
    progress = (lambda line: None) if args.quiet else (lambda line: print(f"  {line}", flush=True))
    launched: list[Any] = []  # the TargetSession of --target, stopped whatever happens
    try:
        address, account, shown = _resolve(args, launched)
        name = args.name or _default_name(address.host, address.port)
        print(f"probing {shown} ...", flush=True)
        draft, probe, seconds = run_probe(address, account, progress)
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        out = Path(args.out or f"probe-{name}")
        paths = write(out, draft, probe.record, name, shown, when, seconds,
                      credentials=account.username is not None or account.password is not None)
    except HarnessError as exc:
        print(f"harness probe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness probe: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # writing the files
        print(f"harness probe: cannot write {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        for session in launched:
            session.stop()
    print(f"{'stopped early' if draft.stopped else 'done'} in {seconds:.1f} s: draft profile {paths['profile']}, "
          f"targets entry {paths['targets']}, record {paths['record']}")
    print(f"run the suite with it: pytest --targets-file {paths['targets']} --target {name}")
    if draft.stopped:
        print(f"harness probe: {draft.stopped} (what was found before that is in the files)", file=sys.stderr)
        return 1
    return 0


def _resolve(args: argparse.Namespace, launched: list[Any]) -> tuple[Address, Account, str]:
    """(address, account, URL to show); a --target's TargetSession goes into `launched` before it starts."""
    from harness.targets import TargetSession, parse_endpoint_url, redact_url, target_from_file
    from harness.targets.profiles import load_profile

    if args.url:
        address, url_account = parse_endpoint_url(args.url, "probe URL")
        user = args.user if args.user is not None else getattr(url_account, "username", None)
        password = args.password if args.password is not None else getattr(url_account, "password", None)
        return address, Account(user, password), redact_url(args.url)
    path = Path(args.targets_file) if args.targets_file else (Path("targets.yaml") if Path("targets.yaml").is_file() else None)
    spec = target_from_file(path, args.target)
    session = TargetSession(spec, load_profile(spec.profile))
    launched.append(session)
    endpoint = session.endpoint()  # starts a launched broker
    default = endpoint.accounts.get("default")
    account = Account(getattr(default, "username", None), getattr(default, "password", None))
    if args.user is not None or args.password is not None:
        account = Account(args.user, args.password)
    return endpoint.address, account, redact_url(endpoint.address.url)


def _default_name(host: str, port: int) -> str:
    return "probe-" + re.sub(r"[^0-9A-Za-z]+", "-", f"{host}-{port}").strip("-")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt
