"""Target URLs (mqtt://, mqtts://, ws://, wss://, with credentials and settings in them) and the TLS
fields a target may set: parsed and checked, with a clear error naming the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from harness.clients import Address, parse_address
from harness.clients.tls import TLS_VERSIONS
from harness.errors import HarnessError
from harness.targets.spec import Account, TargetSpec

# targets.yaml `tls:` fields (and --tls-* options) -> TlsOptions fields.
TLS_FIELDS = {"ca_file": str, "cert_file": str, "key_file": str, "server_name": str, "min_version": str,
              "max_version": str, "insecure": bool}


def check_tls(raw: Any, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{source}: expected a mapping of {', '.join(TLS_FIELDS)}")
    unknown = set(raw) - set(TLS_FIELDS)
    if unknown:
        raise HarnessError(f"{source}: unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(TLS_FIELDS)})")
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        if TLS_FIELDS[key] is bool:
            if not isinstance(value, bool):
                raise HarnessError(f"{source}.{key}: expected true or false")
            checked[key] = value
        elif key in ("min_version", "max_version"):
            if str(value) not in TLS_VERSIONS:
                raise HarnessError(f"{source}.{key}: {value!r} is not a TLS version (known: {', '.join(TLS_VERSIONS)})")
            checked[key] = str(value)
        elif key.endswith("_file"):
            path = Path(os.path.expanduser(str(value)))
            if not path.is_file():
                raise HarnessError(f"{source}.{key}: file {path} not found")
            checked[key] = str(path.resolve())
        else:
            checked[key] = str(value)
    return checked


def parse_url(url: str, source: str) -> tuple[str, int, Account | None]:
    address, account = parse_endpoint_url(url, source)
    return address.host, address.port, account


def parse_endpoint_url(url: str, source: str) -> tuple[Address, Account | None]:
    """mqtt://, mqtts://, ws:// or wss:// [user:pass@] host [:port] [/path] -> its Address and account."""
    try:
        address = parse_address(url)
    except ValueError as exc:
        raise HarnessError(f"{source}: {exc} in {redact_url(url)}") from None
    parts = urlsplit(url)
    account = None
    if parts.username is not None:
        account = Account(unquote(parts.username), unquote(parts.password or ""))
    return address, account


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


# Settings a --broker URL may carry in its query (`mqtt://host:1883?keepalive_grace=6`), with their type.
URL_SETTINGS = {"keepalive_grace": float}


def target_from_url(url: str) -> TargetSpec:
    url, settings = _url_settings(url)
    address, account = parse_endpoint_url(url, "--broker")
    return TargetSpec(name=f"{address.host}:{address.port}", source="--broker", url=url, settings=settings,
                      accounts={"default": account} if account else {}, endpoints={address.transport: url})


def _url_settings(url: str) -> tuple[str, dict[str, Any]]:
    """The URL without the query parameters that are settings, and those settings."""
    parts = urlsplit(url)
    kept, settings = [], {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_SETTINGS:
            kept.append((name, value))
            continue
        try:
            settings[name] = URL_SETTINGS[name](value)
        except ValueError:
            raise HarnessError(f"--broker: {name}={value!r} in the URL is not a number") from None
    return parts._replace(query=urlencode(kept)).geturl(), settings
