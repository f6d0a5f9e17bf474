"""`harness list`: what a run from this folder can use, and where each piece comes from.

    harness list                 # a summary: built-in scenario files, the targets, the profiles
    harness list scenarios       # every built-in scenario: node id, protocol, title
    harness list targets         # every target: how it is reached, its profile, the file defining it
    harness list profiles        # every profile: its protocols and file

Targets and profiles are the built-in ones with the user's over them by name: targets.yaml and
profiles/ in --root (default: the current folder, the first place pytest runs look), or
--targets-file.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from harness import suite
from harness.errors import HarnessError, ScenarioFileError
from harness.scenarios.model import load_scenarios
from harness.targets import load_targets, shown_path, user_targets_file
from harness.targets.profiles import known_profiles, load_profile, user_profile_dirs

WHAT = ("scenarios", "targets", "profiles")


def scenario_lines() -> list[str]:
    lines = []
    for path in suite.scenario_files():
        nodeid = suite.builtin_nodeid(path)
        try:
            scenarios = load_scenarios(path, nodeid)
        except ScenarioFileError as exc:
            lines.append(f"{nodeid}: cannot be loaded: {exc.problem}")
            continue
        lines += [f"{nodeid}::{s.id}  [MQTT {s.protocol.label}] {s.title}" for s in scenarios]
    return lines


def scenario_summary() -> list[str]:
    per_file: Counter[str] = Counter()
    for path in suite.scenario_files():
        nodeid = suite.builtin_nodeid(path) or str(path)
        try:
            per_file[nodeid] = len(load_scenarios(path, nodeid))
        except ScenarioFileError:
            per_file[nodeid] = 0
    lines = [f"built-in scenarios: {sum(per_file.values())} in {len(per_file)} files ({shown_path(suite.SCENARIOS)})"]
    lines += [f"  {nodeid:48} {count:4}" for nodeid, count in per_file.items()]
    return lines


def target_lines(root: Path, targets_file: Path | None) -> list[str]:
    table = load_targets(user_targets_file([root], targets_file))
    lines = [f"targets (default: {table.default}; read from {', '.join(shown_path(p) for p in table.files)}):"]
    for name in sorted(table.entries):
        entry = table.entries[name] or {}
        if not isinstance(entry, dict):
            lines.append(f"  {name}: not a mapping ({table.shown(name)})")
            continue
        how = (f"launch {entry['launch']}" if entry.get("launch") else entry.get("url")
               or "endpoints " + ", ".join(entry.get("endpoints") or {}))
        lines.append(f"  {name:30} {how:40} profile {entry.get('profile', 'strict'):18} {table.shown(name)}")
    return lines


def profile_lines(root: Path) -> list[str]:
    dirs = user_profile_dirs([root])
    lines = ["profiles:"]
    for name, path in known_profiles(dirs).items():
        try:
            profile = load_profile(str(path))
            protocols = ", ".join(sorted(v.label for v in profile.protocols))
        except HarnessError as exc:
            protocols = f"cannot be loaded: {exc}"
        lines.append(f"  {name:20} MQTT {protocols:18} {shown_path(path)}")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness list", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=WHAT, help="list only these, in full")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="the folder whose targets.yaml and profiles/ extend the built-in ones (default: .)")
    parser.add_argument("--targets-file", type=Path, help="a targets file to read instead of ROOT/targets.yaml")
    args = parser.parse_args(argv)
    try:
        if args.what == "scenarios":
            lines = scenario_lines()
        elif args.what == "targets":
            lines = target_lines(args.root, args.targets_file)
        elif args.what == "profiles":
            lines = profile_lines(args.root)
        else:
            lines = [*scenario_summary(), "", *target_lines(args.root, args.targets_file), "", *profile_lines(args.root)]
    except HarnessError as exc:
        print(f"harness list: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
