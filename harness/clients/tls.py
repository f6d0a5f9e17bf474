"""Client-side TLS: the options a target or scenario gives, the SSLContext, and readable failures.

A TLS failure is a verdict a person must be able to act on, so every ssl exception is classified
into a `reason` (a stable key scenarios match on) and a sentence naming what was wrong:

    unknown_ca            the server's certificate is not signed by a CA we trust
    hostname_mismatch     the certificate does not name the host (or server_name) we asked for
    expired               the server's certificate is past its notAfter
    not_yet_valid         the server's certificate is before its notBefore
    client_cert_required  the server wants a client certificate and we sent none
    client_cert_refused   the server did not accept the client certificate we sent
    protocol_version      no TLS version both sides accept (e.g. min_version above the server's)
    not_tls               the peer does not speak TLS (a plain MQTT port?)
    closed                the peer closed the connection during the handshake
    other                 anything else (the OpenSSL text is kept)
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
from dataclasses import dataclass, replace
from typing import Any

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
REASONS = ("unknown_ca", "hostname_mismatch", "expired", "not_yet_valid", "client_cert_required",
           "client_cert_refused", "protocol_version", "not_tls", "closed", "other")


@dataclass(frozen=True)
class TlsOptions:
    """How the harness verifies the broker and authenticates itself. Paths are PEM files."""

    ca_file: str | None = None  # None: the system's default trust store
    cert_file: str | None = None  # client certificate (chain) for mutual TLS
    key_file: str | None = None  # its key; None when cert_file holds both
    server_name: str | None = None  # SNI and the name the certificate must carry (default: the host)
    min_version: str | None = None  # "1.2" or "1.3"
    max_version: str | None = None
    insecure: bool = False  # skip certificate and host name verification (reported in the run header)

    def with_overrides(self, overrides: dict[str, Any]) -> TlsOptions:
        return replace(self, **overrides)

    def context(self) -> ssl.SSLContext:
        """A client context; ValueError names a bad option, OSError an unreadable file.

        One per set of options and files as they are now: loading the CA file is most of what a context
        costs, and a run opens thousands of TLS connections with the same few (contexts are thread-safe)."""
        return _context(self, tuple(_file_state(path) for path in (self.ca_file, self.cert_file, self.key_file)))

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        else:
            context.load_default_certs()
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        for attribute, text in (("minimum_version", self.min_version), ("maximum_version", self.max_version)):
            if text is not None:
                if str(text) not in TLS_VERSIONS:
                    raise ValueError(f"unknown TLS version {text!r} (known: {', '.join(TLS_VERSIONS)})")
                setattr(context, attribute, TLS_VERSIONS[str(text)])
        return context

    def describe(self) -> str:
        parts = [f"ca {self.ca_file or 'system store'}"]
        if self.cert_file:
            parts.append(f"client certificate {self.cert_file}")
        if self.server_name:
            parts.append(f"server name {self.server_name}")
        if self.min_version:
            parts.append(f"min TLS {self.min_version}")
        if self.insecure:
            parts.append("VERIFICATION DISABLED")
        return ", ".join(parts)


class TlsFailure(ConnectionError):
    """The TLS layer failed: during the handshake, or an alert the server sent after it (TLS 1.3)."""

    def __init__(self, reason: str, detail: str, during_handshake: bool = True) -> None:
        self.reason = reason
        self.detail = detail
        self.during_handshake = during_handshake
        where = "TLS handshake failed" if during_handshake else "TLS alert after the handshake"
        super().__init__(f"{where}: {detail} [{reason}]")


# OpenSSL verify codes (X509_V_ERR_*) that mean "not signed by anyone we trust".
_UNTRUSTED_CODES = {2, 18, 19, 20, 21, 27}
# Alert names the server sends when it dislikes our certificate, or the lack of one.
_REQUIRED_ALERTS = ("CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE")
_REFUSED_ALERTS = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE",
                   "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "ACCESS_DENIED")


def classify(exc: BaseException, *, sent_client_cert: bool, during_handshake: bool = True) -> TlsFailure:
    """Turn an ssl (or socket) exception from a TLS connection into a TlsFailure with a reason."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code, message = exc.verify_code, exc.verify_message or str(exc)
        if code == 10:
            reason = "expired"
        elif code == 9:
            reason = "not_yet_valid"
        elif code in (62, 64) or "mismatch" in message.lower():
            reason = "hostname_mismatch"
        elif code in _UNTRUSTED_CODES:
            reason = "unknown_ca"
        else:
            reason = "other"
        return TlsFailure(reason, f"certificate verify failed: {message} (the server's certificate)", during_handshake)
    text = str(exc) or type(exc).__name__
    upper = (getattr(exc, "reason", None) or text).upper()
    if isinstance(exc, ssl.SSLError):
        if "ALERT" in upper and any(name in upper for name in _REQUIRED_ALERTS):
            return TlsFailure("client_cert_required", f"the server requires a client certificate ({text})", during_handshake)
        if "ALERT" in upper and any(name in upper for name in _REFUSED_ALERTS):
            reason = "client_cert_refused" if sent_client_cert else "client_cert_required"
            what = "refused the client certificate" if sent_client_cert else "requires a client certificate"
            return TlsFailure(reason, f"the server {what} ({text})", during_handshake)
        if "HANDSHAKE_FAILURE" in upper and not sent_client_cert:
            # TLS 1.2 servers often answer a missing required certificate with a bare handshake_failure.
            return TlsFailure("client_cert_required", f"the server aborted the handshake; it may require a client certificate ({text})",
                              during_handshake)
        if any(name in upper for name in ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL")):
            return TlsFailure("protocol_version", f"no TLS version both sides accept ({text})", during_handshake)
        if any(name in upper for name in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")):
            return TlsFailure("not_tls", f"the peer does not speak TLS; is this a plain MQTT port? ({text})", during_handshake)
        if isinstance(exc, ssl.SSLEOFError) or "EOF" in upper:
            return TlsFailure("closed", f"the server closed the connection during the handshake ({text})", during_handshake)
        return TlsFailure("other", text, during_handshake)
    if isinstance(exc, ConnectionResetError | BrokenPipeError) or (isinstance(exc, OSError) and "EOF" in upper):
        return TlsFailure("closed", f"the server closed the connection during the handshake ({text})", during_handshake)
    return TlsFailure("other", text, during_handshake)


def failed_send(sock: socket.socket, exc: OSError, *, sent_client_cert: bool) -> TlsFailure:
    """Why a write on a TLS socket failed. A TLS 1.3 server that refuses our certificate sends its
    alert and closes; a write racing that close sees only EOF, while the alert waits to be read."""
    try:
        sock.settimeout(0.5)
        sock.recv(1)
    except ssl.SSLError as alert:
        failure = classify(alert, sent_client_cert=sent_client_cert, during_handshake=False)
        if failure.reason not in ("closed", "other"):
            return failure
    except OSError:
        pass
    return classify(exc, sent_client_cert=sent_client_cert, during_handshake=False)


def _file_state(path: str | None) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if path else None
    except OSError:
        return None  # loading it says why
    return (stat.st_mtime_ns, stat.st_size) if stat else None


@functools.lru_cache(maxsize=64)
def _context(options: TlsOptions, files: tuple[tuple[int, int] | None, ...]) -> ssl.SSLContext:
    return options._new_context()
