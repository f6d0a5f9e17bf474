"""The targets file: the built-in targets with the user's files over them by name, and one entry of
them checked field by field into a TargetSpec (secrets from the environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, load_data_file
from harness.targets.profiles import is_profile_path
from harness.targets.spec import Account, TargetSpec
from harness.targets.urls import check_tls, parse_endpoint_url

DEFAULT_TARGET = "reference"


@dataclass(frozen=True)
class TargetsTable:
    """The targets a run can name: the built-in file's, then each user file's over them by name."""

    entries: dict[str, Any]  # name -> its mapping, as written
    origin: dict[str, Path]  # name -> the file that defines it
    default: str
    default_origin: Path | None  # the file whose `default:` chose it (None: DEFAULT_TARGET)
    files: tuple[Path, ...]  # every file read, built-in first

    def shown(self, name: str) -> str:
        return shown_path(self.origin[name])


def shown_path(path: Path) -> str:
    """A file as messages and the run header show it: `built-in harness/...` (package data) or its path."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (path.absolute(), path.resolve()):
        if candidate.is_relative_to(package):
            return f"built-in harness/{candidate.relative_to(package).as_posix()}"
    return str(path)


def user_targets_file(folders: Sequence[Path], explicit: str | Path | None) -> Path | None:
    """The user's targets file: --targets-file (which must exist), else the first user folder's
    targets.yaml (harness.folders), if any."""
    from harness.folders import first_file

    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise HarnessError(f"targets file {path} not found (--targets-file)")
        return path
    return first_file(list(folders), "targets.yaml")


def load_targets(*user_files: Path | None, builtin: bool = True) -> TargetsTable:
    """The built-in targets (harness/suite/targets.yaml) with each given file's entries over them."""
    from harness import suite

    paths = ([suite.TARGETS_FILE] if builtin else []) + [p for p in user_files if p is not None]
    entries: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    default, default_origin = DEFAULT_TARGET, None
    for path in paths:
        data = _targets_data(path)
        for name, entry in data["targets"].items():
            entries[str(name)], origin[str(name)] = entry, path
        if data.get("default") is not None:
            default, default_origin = str(data["default"]), path
    return TargetsTable(entries, origin, default, default_origin, tuple(paths))


def _targets_data(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise HarnessError(f"targets file {path} not found")
    data = load_data_file(path, str(path))
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
        raise HarnessError(f"{path}: expected a top-level 'targets:' mapping")
    unknown = set(data) - {"targets", "default"}
    if unknown:
        raise HarnessError(f"{path}: unknown top-level field(s) {', '.join(sorted(unknown))} (known: default, targets)")
    return data


def target_from_file(path: Path | None, name: str | None) -> TargetSpec:
    """The target `name` (default: the files' `default:`) of the built-in targets extended by `path`."""
    return target_from_table(load_targets(path), name)


def target_from_table(table: TargetsTable, name: str | None) -> TargetSpec:
    chosen = name or table.default
    if chosen not in table.entries:
        where = f" (the default of {shown_path(table.default_origin)})" if name is None and table.default_origin else ""
        raise HarnessError(f"unknown target {chosen!r}{where} (known: {', '.join(sorted(table.entries))}; "
                           f"read from {', '.join(shown_path(p) for p in table.files)})")
    entry = table.entries[chosen] or {}
    path = table.origin[chosen]
    source = f"{path.name}: targets.{chosen}"
    if not isinstance(entry, dict):
        raise HarnessError(f"{path}: targets.{chosen}: expected a mapping")
    unknown = set(entry) - {"url", "launch", "profile", "accounts", "capabilities", "deviations", "settings", "description",
                            "endpoints", "tls"}
    if unknown:
        raise HarnessError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    if sum(bool(entry.get(key)) for key in ("url", "launch", "endpoints")) != 1:
        raise HarnessError(f"{source}: give exactly one of 'url', 'endpoints' or 'launch'")
    endpoints, endpoint_tls = _endpoints(entry, source)
    accounts: dict[str, Account] = {}
    for account_name, creds in (entry.get("accounts") or {}).items():
        field_source = f"{source}.accounts.{account_name}"
        if not isinstance(creds, dict):
            raise HarnessError(f"{field_source}: expected username and password")
        accounts[account_name] = Account(
            _secret(creds.get("username"), f"{field_source}.username"), _secret(creds.get("password"), f"{field_source}.password")
        )
    for url in endpoints.values():
        _, url_account = parse_endpoint_url(url, source)
        if url_account and "default" not in accounts:
            accounts["default"] = url_account
    return TargetSpec(
        name=chosen,
        source=source,
        url=entry.get("url"),
        launch=entry.get("launch"),
        profile=_profile_reference(entry.get("profile", "strict"), path, source),
        defined_in=path,
        accounts=accounts,
        capabilities=dict(entry.get("capabilities") or {}),
        deviations={str(k): str(v) for k, v in (entry.get("deviations") or {}).items()},
        settings=dict(entry.get("settings") or {}),
        endpoints=endpoints,
        tls=check_tls(entry.get("tls"), f"{source}.tls"),
        endpoint_tls=endpoint_tls,
    )


def _profile_reference(value: Any, path: Path, source: str) -> str:
    """A profile name, or a path to a profile file (relative to the targets file that names it)."""
    if not isinstance(value, str) or not value:
        raise HarnessError(f"{source}.profile: expected a profile name or a path to a profile file")
    if is_profile_path(value):
        return str((path.parent / os.path.expanduser(value)).resolve())
    return value


def _endpoints(entry: dict[str, Any], source: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """`url: U` -> {transport of U: U}; `endpoints: {name: URL or {url, tls}}` -> names in file order."""
    if entry.get("url"):
        address, _ = parse_endpoint_url(entry["url"], source)
        return {address.transport: entry["url"]}, {}
    raw = entry.get("endpoints")
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict) or not raw:
        raise HarnessError(f"{source}.endpoints: expected a mapping of name to URL (tcp: mqtt://..., tls: mqtts://...)")
    urls: dict[str, str] = {}
    tls: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        where = f"{source}.endpoints.{name}"
        if isinstance(value, dict):
            unknown = set(value) - {"url", "tls"}
            if unknown or "url" not in value:
                raise HarnessError(f"{where}: expected a URL or {{url, tls}}")
            tls[str(name)] = check_tls(value.get("tls"), f"{where}.tls")
            value = value["url"]
        parse_endpoint_url(str(value), where)
        urls[str(name)] = str(value)
    return urls, tls


def _secret(value: Any, source: str) -> str:
    """A literal, or {env: NAME} read from the environment so secrets stay out of the file."""
    if isinstance(value, Mapping) and set(value) == {"env"}:
        variable = str(value["env"])
        if variable not in os.environ:
            raise HarnessError(f"{source}: environment variable {variable} is not set")
        return os.environ[variable]
    if value is None:
        raise HarnessError(f"{source}: missing")
    return str(value)
