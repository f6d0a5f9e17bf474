"""Topic filter syntax (3.1.1 §4.7, 5.0 §4.7 and §4.8.2), for the decoder's findings."""

from __future__ import annotations

from harness.wire.constants import Version


def filter_problem(topic_filter: str, version: Version) -> tuple[str, str] | None:
    """(statement id, message) for the first syntax rule `topic_filter` breaks, or None if it is valid."""
    v5 = version is Version.V5
    if not topic_filter:
        return "MQTT-4.7.3-1", "empty topic filter"
    if v5 and topic_filter.startswith("$share/"):
        share_name, separator, inner = topic_filter[len("$share/"):].partition("/")
        if not share_name:
            return "MQTT-4.8.2-1", f"shared subscription {topic_filter!r} has an empty share name"
        if "+" in share_name or "#" in share_name:
            return "MQTT-4.8.2-2", f"share name {share_name!r} contains a wildcard"
        if not separator or not inner:
            return "MQTT-4.8.2-2", f"shared subscription {topic_filter!r} has no topic filter after the share name"
        topic_filter = inner
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return ("MQTT-4.7.1-1" if v5 else "MQTT-4.7.1-2",
                    f"'#' in {topic_filter!r} is not a whole last level")
        if "+" in level and level != "+":
            return ("MQTT-4.7.1-2" if v5 else "MQTT-4.7.1-3",
                    f"'+' in {topic_filter!r} does not fill a whole level")
    return None
