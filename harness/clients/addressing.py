"""Which address a scenario's connection opens: the run's endpoint, a named one, with TLS changed.

Scenarios about TLS failures ask for a connection that differs on purpose — another CA, no client
certificate, a wrong server name. They say so by name (`ca: foreign`, `client_cert: none`); the
files those names stand for are the target's `TlsMaterial`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from harness.clients.tls import TlsOptions
from harness.clients.transport import Address


@dataclass(frozen=True)
class TlsMaterial:
    """Certificate files a scenario may ask for by name (paths; None where the target has none)."""

    ca_file: str | None = None  # the CA that verifies the target (ca: target)
    client_cert: str | None = None  # the target's client certificate (client_cert: target)
    client_key: str | None = None
    foreign_ca: str | None = None  # a CA that signed nothing of the target's (ca: foreign)
    foreign_cert: str | None = None  # a client certificate signed by it (client_cert: foreign)
    foreign_key: str | None = None


def apply_tls_overrides(address: Address, overrides: Mapping[str, Any], material: TlsMaterial) -> Address:
    """`address` with the scenario's TLS overrides; ValueError if the address is not TLS or a file is missing."""
    if not overrides:
        return address
    if not address.uses_tls:
        raise ValueError(f"tls options need a TLS endpoint (mqtts:// or wss://), not {address.url}")
    options = address.tls or TlsOptions()
    changes: dict[str, Any] = {}
    ca = overrides.get("ca")
    if ca == "foreign":
        changes["ca_file"] = _need(material.foreign_ca, "foreign CA")
        changes["insecure"] = False  # the point is that verification fails
    elif ca == "target":
        changes["ca_file"] = material.ca_file
    client_cert = overrides.get("client_cert")
    if client_cert == "none":
        changes["cert_file"] = changes["key_file"] = None
    elif client_cert == "target":
        changes["cert_file"] = _need(material.client_cert, "client certificate (tls.cert_file / --tls-cert)")
        changes["key_file"] = material.client_key
    elif client_cert == "foreign":
        changes["cert_file"] = _need(material.foreign_cert, "foreign client certificate")
        changes["key_file"] = material.foreign_key
    for key in ("server_name", "min_version", "max_version"):
        if key in overrides:
            changes[key] = overrides[key]
    return address.with_tls(replace(options, **changes))


def _need(path: str | None, what: str) -> str:
    if not path:
        raise ValueError(f"the target has no {what}")
    return path
