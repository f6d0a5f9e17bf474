"""Test certificates, generated at run time (never committed): a CA, server and client certificates.

`make_pki(directory)` writes one run's material with trustme:

- `ca`: the CA the harness trusts for a launched broker (`ca.pem`)
- `server`: certificate + key for `localhost` and `127.0.0.1`, signed by `ca`
- `expired`, `not_yet_valid`: server certificates signed by `ca` whose validity is over / not begun,
  served by dedicated listeners so the TLS failure scenarios have something to fail against
- `client`: a client certificate (CN `CLIENT_CN`) signed by `ca`, for mutual TLS
- `foreign_ca`, `foreign_client`: a CA nobody trusts and a client certificate it signed, for the
  "unknown CA" scenarios on either side

ECDSA keys (trustme's default) keep generation to a few milliseconds per certificate.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme

# Common name of the run's client certificate. The reference broker's Cumulocity-style listener
# takes the ClientId's device identifier from it, so it is a valid MQTT 3.1 ClientId (<= 23 alnum).
CLIENT_CN = "harnessdevice"
SERVER_IDENTITIES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class KeyPair:
    cert: Path  # PEM chain, leaf first
    key: Path


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Path
    server: KeyPair
    expired: KeyPair
    not_yet_valid: KeyPair
    client: KeyPair
    foreign_ca: Path
    foreign_client: KeyPair
    client_cn: str = CLIENT_CN


def _write_leaf(leaf: trustme.LeafCert, directory: Path, name: str) -> KeyPair:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    # The whole chain (leaf first): servers and clients then send what the peer needs to verify.
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    # Brokers that drop privileges (mosquitto as root) must still read them; they are test-only keys.
    cert.chmod(0o644)
    key.chmod(0o644)
    return KeyPair(cert, key)


def make_pki(directory: Path, server_days: int | None = None) -> Pki:
    """`server_days`: the ordinary server certificate is valid from a day ago for that many days
    instead of trustme's 2000-3000 (ejabberd's certificate store refuses a notAfter in year 3000)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = trustme.CA(organization_name="mqtt-harness test CA")
    foreign = trustme.CA(organization_name="mqtt-harness foreign CA")
    ca_path, foreign_path = directory / "ca.pem", directory / "foreign-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    foreign.cert_pem.write_to_path(str(foreign_path))
    ca_path.chmod(0o644)
    foreign_path.chmod(0o644)
    day = datetime.timedelta(days=1)
    validity = {"not_before": now - day, "not_after": now + server_days * day} if server_days else {}
    return Pki(
        directory=directory,
        ca=ca_path,
        server=_write_leaf(ca.issue_cert(*SERVER_IDENTITIES, **validity), directory, "server"),
        expired=_write_leaf(
            ca.issue_cert(*SERVER_IDENTITIES, not_before=now - 30 * day, not_after=now - day), directory, "expired"
        ),
        not_yet_valid=_write_leaf(
            ca.issue_cert(*SERVER_IDENTITIES, not_before=now + day, not_after=now + 30 * day), directory, "not-yet-valid"
        ),
        client=_write_leaf(ca.issue_cert(CLIENT_CN, common_name=CLIENT_CN), directory, "client"),
        foreign_ca=foreign_path,
        foreign_client=_write_leaf(foreign.issue_cert(CLIENT_CN, common_name=CLIENT_CN), directory, "foreign-client"),
    )
