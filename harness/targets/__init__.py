"""Targets: the broker a run checks, named in targets.yaml or given as a URL, and its lifetime.

A target is either reached at a URL (someone else runs the broker) or launched by the harness on a
free loopback port (`launch: mosquitto`, `launch: reference`) and stopped when the run ends.
Credentials are never written in targets.yaml: they come from environment variables.
"""

import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from harness.errors import HarnessError
from harness.scenarios.runner import Endpoint
from harness.targets.profiles import Profile

DEFAULT_TARGET = "mosquitto"
# What a harness-launched broker always offers: the standard accounts and their ACL.
LAUNCHED_CAPABILITIES = {"auth": True, "restricted_account": True, "anonymous_refused": True}


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass
class TargetSpec:
    name: str
    source: str  # where it was defined, for messages
    url: str | None = None
    launch: str | None = None
    profile: str = "strict"
    accounts: dict[str, Account] = field(default_factory=dict)
    capabilities: dict[str, bool] = field(default_factory=dict)
    deviations: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str, source: str) -> tuple[str, int, Account | None]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise HarnessError(f"{source}: unsupported URL scheme {parts.scheme!r} in {redact_url(url)} (supported: mqtt://)")
    if not parts.hostname:
        raise HarnessError(f"{source}: no host in {redact_url(url)} (expected mqtt://[user:pass@]host:port)")
    try:
        port = parts.port or 1883
    except ValueError:
        raise HarnessError(f"{source}: bad port in {redact_url(url)}") from None
    account = None
    if parts.username is not None:
        account = Account(unquote(parts.username), unquote(parts.password or ""))
    return parts.hostname, port, account


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def target_from_url(url: str) -> TargetSpec:
    host, port, account = parse_url(url, "--broker")
    accounts = {"default": account} if account else {}
    return TargetSpec(
        name=f"{host}:{port}",
        source="--broker",
        url=url,
        accounts=accounts,
        capabilities={"auth": account is not None},
    )


def load_targets(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise HarnessError(f"targets file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise HarnessError(f"{path}: YAML syntax: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
        raise HarnessError(f"{path}: expected a top-level 'targets:' mapping")
    return data


def target_from_file(path: Path, name: str | None) -> TargetSpec:
    data = load_targets(path)
    targets: dict[str, Any] = data["targets"]
    chosen = name or data.get("default", DEFAULT_TARGET)
    if chosen not in targets:
        raise HarnessError(f"unknown target {chosen!r} (known in {path.name}: {', '.join(sorted(targets))})")
    entry = targets[chosen] or {}
    source = f"{path.name}: targets.{chosen}"
    if not isinstance(entry, dict):
        raise HarnessError(f"{source}: expected a mapping")
    unknown = set(entry) - {"url", "launch", "profile", "accounts", "capabilities", "deviations", "settings", "description"}
    if unknown:
        raise HarnessError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    if bool(entry.get("url")) == bool(entry.get("launch")):
        raise HarnessError(f"{source}: give exactly one of 'url' or 'launch'")
    accounts: dict[str, Account] = {}
    for account_name, creds in (entry.get("accounts") or {}).items():
        field_source = f"{source}.accounts.{account_name}"
        if not isinstance(creds, dict):
            raise HarnessError(f"{field_source}: expected username and password")
        accounts[account_name] = Account(
            _secret(creds.get("username"), f"{field_source}.username"), _secret(creds.get("password"), f"{field_source}.password")
        )
    if entry.get("url"):
        _, _, url_account = parse_url(entry["url"], source)
        if url_account and "default" not in accounts:
            accounts["default"] = url_account
    # A launched broker brings its own accounts; a reached one offers what its accounts allow.
    capabilities = {} if entry.get("launch") else {"auth": "default" in accounts, "restricted_account": "restricted" in accounts}
    capabilities.update(entry.get("capabilities") or {})
    return TargetSpec(
        name=chosen,
        source=source,
        url=entry.get("url"),
        launch=entry.get("launch"),
        profile=entry.get("profile", "strict"),
        accounts=accounts,
        capabilities=capabilities,
        deviations={str(k): str(v) for k, v in (entry.get("deviations") or {}).items()},
        settings=dict(entry.get("settings") or {}),
    )


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


class TargetSession:
    """The target for this run: launched once (by the xdist controller), reachable by every worker."""

    def __init__(self, spec: TargetSpec, profile: Profile) -> None:
        self.spec = spec
        self.profile = profile
        self._endpoint: Endpoint | None = None
        self._error: str | None = None
        self._broker: Any = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.version: str | None = None

    @property
    def capabilities(self) -> dict[str, bool]:
        merged = dict(self.profile.capabilities)
        if self.spec.launch:
            merged.update(LAUNCHED_CAPABILITIES)
        merged.update(self.spec.capabilities)
        return merged

    @property
    def settings(self) -> dict[str, Any]:
        return {**self.profile.settings, **self.spec.settings}

    def endpoint(self) -> Endpoint:
        """The reachable endpoint, starting the broker on first use; HarnessError if there is none."""
        if self._endpoint is None and self._error is None:
            try:
                self._endpoint = self._start()
            except HarnessError as exc:
                self._error = str(exc)
        if self._error is not None:
            raise HarnessError(self._error)
        assert self._endpoint is not None
        return self._endpoint

    def _start(self) -> Endpoint:
        if self.spec.launch:
            from harness.launch import LaunchError, launch

            self._workdir = tempfile.TemporaryDirectory(prefix=f"mqtt-harness-{self.spec.launch}-")
            try:
                self._broker = launch(self.spec.launch, Path(self._workdir.name))
            except LaunchError as exc:
                raise HarnessError(str(exc)) from None
            self.version = self._broker.version
            accounts = {name: Account(a.username, a.password) for name, a in self._broker.accounts.items()}
            accounts.update(self.spec.accounts)
            return self._make_endpoint(self._broker.host, self._broker.port, accounts)
        assert self.spec.url is not None
        host, port, _ = parse_url(self.spec.url, self.spec.source)
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except OSError as exc:
            raise HarnessError(f"broker {redact_url(self.spec.url)} unreachable: {exc.strerror or exc}") from None
        return self._make_endpoint(host, port, dict(self.spec.accounts))

    def _make_endpoint(self, host: str, port: int, accounts: dict[str, Account]) -> Endpoint:
        from harness.launch import RESTRICTED_PREFIX

        return Endpoint(host=host, port=port, accounts=accounts, profile=self.profile.name,
                        acl_allowed_prefix=RESTRICTED_PREFIX, settings=self.settings)

    def export(self) -> dict[str, Any]:
        """What an xdist worker needs to use the controller's broker (plain data)."""
        try:
            endpoint = self.endpoint()
        except HarnessError as exc:
            return {"error": str(exc)}
        return {
            "host": endpoint.host,
            "port": endpoint.port,
            "accounts": {k: [a.username, a.password] for k, a in endpoint.accounts.items()},
            "acl_allowed_prefix": endpoint.acl_allowed_prefix,
            "version": self.version,
        }

    def adopt(self, exported: dict[str, Any]) -> None:
        """Use the broker the controller started instead of starting one."""
        if "error" in exported:
            self._error = exported["error"]
            return
        self.version = exported.get("version")
        accounts = {k: Account(*v) for k, v in exported["accounts"].items()}
        self._endpoint = Endpoint(
            host=exported["host"], port=exported["port"], accounts=accounts, profile=self.profile.name,
            acl_allowed_prefix=exported["acl_allowed_prefix"], settings=self.settings,
        )

    def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
