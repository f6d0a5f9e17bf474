"""The ClientId shape that both a transport and a personality read: a leaf module, imported by both."""

from __future__ import annotations


def device_identifier(client_id: str) -> str:
    """C8Y-CLIENTID-FORMAT: `[connectionType:]deviceIdentifier[:defaultTemplate]` -> deviceIdentifier.

    A listener with `client_id_from_cn` compares this part of the ClientId with the client
    certificate's common name (as Cumulocity does with device certificates)."""
    parts = client_id.split(":")
    return parts[1] if len(parts) >= 2 else client_id
