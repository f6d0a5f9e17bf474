"""Where a scenario's `refs` are written down, and how binding they are.

OASIS ids link into the standard's HTML with a text fragment (`#:~:text=`), which browsers
(Chromium, Firefox, Safari) scroll to and highlight: the standards tag each statement with its
id in brackets, and their section anchors are opaque `_Toc...` names that no table here could
keep right. Vendor ids (VENDORS.md: C8Y-..., IT-...) link to the platform's MQTT document.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from harness import spec
from harness.wire import Version

SPEC_DOCUMENTS = {
    Version.V31: "https://public.dhe.ibm.com/software/dw/webservices/ws-mqtt/mqtt-v3r1.html",
    Version.V311: "https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html",
    Version.V5: "https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html",
}

# Vendor id prefix -> (platform, its public MQTT document). Longest prefix wins (C8YL before C8Y).
VENDOR_DOCUMENTS: dict[str, tuple[str, str]] = {
    "C8YL-": ("Cumulocity (legacy MQTT document)", "https://cumulocity.com/guides/10.11.0/device-sdk/mqtt/"),
    "C8Y-": ("Cumulocity IoT", "https://cumulocity.com/docs/device-integration/mqtt/"),
    "CP-": ("CloudPlugs", "https://docs.cloudplugs.com/"),
    "IT-": ("Itron (HiveMQ)", "https://developer.itron.com/"),
    "W-": ("IBM Watson IoT Platform", "https://cloud.ibm.com/docs/IoT?topic=IoT-mqtt"),
}

# Allure severities. Every numbered OASIS statement is a MUST (Appendix B of both standards lists
# the mandatory statements); our 3.1 rules and vendor documents say how binding they are in words.
MUST, SHOULD, MAY = "critical", "normal", "minor"


@dataclass(frozen=True)
class RefLink:
    ref: str
    name: str  # what the link shows: the id and, where known, the section
    url: str | None


def _fragment(text: str) -> str:
    # In a text directive "-", "," and "&" are syntax, so they must be percent-encoded.
    return quote(text, safe="").replace("-", "%2D")


def ref_link(ref: str, version: Version) -> RefLink:
    for prefix, (platform, url) in sorted(VENDOR_DOCUMENTS.items(), key=lambda kv: -len(kv[0])):
        if ref.startswith(prefix):
            return RefLink(ref, f"{ref} ({platform})", url)
    statement = spec.lookup(version, ref)
    if statement is None:
        return RefLink(ref, ref, None)
    document = SPEC_DOCUMENTS[statement.version]
    if ref.startswith("MQTT31-"):
        # Our 3.1 rule ids are not in IBM's text: point at the section title instead.
        title = statement.section.split(" ", 1)[-1]
        return RefLink(ref, f"{ref} (MQTT 3.1 §{statement.section})", f"{document}#:~:text={_fragment(title)}")
    return RefLink(ref, f"{ref} (MQTT {statement.version.label} §{statement.section})",
                   f"{document}#:~:text={_fragment('[' + ref + ']')}")


def ref_level(ref: str, version: Version) -> str:
    """MUST, SHOULD or MAY for one ref (as an Allure severity)."""
    statement = spec.lookup(version, ref)
    if statement is None:
        return SHOULD  # a vendor's documented behaviour: what the platform says it does, not a standard
    if not ref.startswith("MQTT31-"):
        return MUST
    words = f" {statement.paraphrase.lower()} "
    if " must " in words or " is not valid" in words or " only" in words:
        return MUST
    if " should " in words:
        return SHOULD
    if " may " in words:
        return MAY
    return MUST


def severity(refs: tuple[str, ...] | list[str], version: Version) -> str:
    """The most binding level among the refs: a scenario checking any MUST is critical."""
    levels = [ref_level(ref, version) for ref in refs]
    for level in (MUST, SHOULD, MAY):
        if level in levels:
            return level
    return SHOULD
