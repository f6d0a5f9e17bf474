"""`harness probe URL | --target NAME`: probe a broker and write a draft profile, a targets entry and a record."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.probe import run_probe
from harness.probe.draft import write
from harness.targets import Account
from harness.targets.reach import reached

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
    if bool(args.url) == bool(args.target):
        print("harness probe: give a broker URL or --target NAME (one of them)", file=sys.stderr)
        return 2
    if args.password is not None and args.user is None:
        print("harness probe: --password needs --user (a 3.x CONNECT cannot carry a password without a user name)", file=sys.stderr)
        return 2
    progress = (lambda line: None) if args.quiet else (lambda line: print(f"  {line}", flush=True))
    try:
        with reached(args.url, args.target, args.targets_file, "probe URL") as (address, account, shown):
            if args.user is not None:  # over the URL's user info (its password stays unless given); over the entry's account
                kept = account.password if args.url else None
                account = Account(args.user, args.password if args.password is not None else kept)
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
    except OSError as exc:  # writing the files
        print(f"harness probe: cannot write {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{'stopped early' if draft.stopped else 'done'} in {seconds:.1f} s: draft profile {paths['profile']}, "
          f"targets entry {paths['targets']}, record {paths['record']}")
    print(f"run the suite with it: pytest --targets-file {paths['targets']} --target {name}")
    if draft.stopped:
        print(f"harness probe: {draft.stopped} (what was found before that is in the files)", file=sys.stderr)
        return 1
    return 0


def _default_name(host: str, port: int) -> str:
    return "probe-" + re.sub(r"[^0-9A-Za-z]+", "-", f"{host}-{port}").strip("-")

