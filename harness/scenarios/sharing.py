"""Which scenarios need the broker to themselves when scenarios run concurrently (harness.pipeline).

A scenario's own names are below `${topic}` (mqc/<its ClientId>), its ClientId `${cid}` and what
derives from them (`${acl_allowed}`, a long `${random}`, a value saved from a packet it received);
concurrent scenarios never see each other's traffic there. Anything else is shared with every other
scenario on the broker, and such a scenario runs alone (nothing else in flight, in any worker):

- a subscription to a filter outside its own names with a wildcard or `$` (`#`, `+/x`, `$SYS/#`)
  would receive the others' messages;
- a subscription, PUBLISH, Will or ClientId with a fixed name (`s/us`, a platform's device id, a
  `${random:1}` ClientId) may meet another scenario, or another variant of itself, using it;
- the file says so (`alone: <why>`: broker-wide state, limits), or the target's profile does
  (`run_alone: {scenario id: why}`, `{uses retain: why}` for every scenario that uses a feature of
  Scenario.uses, where a broker lets that feature reach other clients, or `{every scenario: why}`
  for a broker that loses or misroutes messages while other clients come and go).

The target's settings are applied first: a profile whose `device_id` is `${cid}` gives every
scenario a device of its own, a real platform's fixed device is shared.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from harness.scenarios.model import Scenario, Step
from harness.scenarios.values import choose_by_profile, references

# References that make a name the scenario's own.
OWN_REFERENCES = {"cid", "topic", "acl_allowed"}
# `${random:N}` at least this long is unique enough to be a name of one's own (62^8 values).
UNIQUE_RANDOM_LENGTH = 8
# The profile's `run_alone` key that makes every scenario run alone.
EVERY_SCENARIO = "every scenario"


def alone_reason(scenario: Scenario, settings: Mapping[str, Any], profile: str,
                 profile_marks: Mapping[str, str] | None = None) -> str | None:
    """Why the scenario must run with the broker to itself, or None when it may run beside others."""
    marks = profile_marks or {}
    marked = marks.get(EVERY_SCENARIO) or marks.get(scenario.id) or next((why for key, why in marks.items()
                                             if key.startswith("uses ") and key[5:].strip() in scenario.uses), None)
    if marked:
        return f"the profile {profile} says: {marked}"
    if scenario.alone:
        return scenario.alone
    saved = {str(name) for step in scenario.steps for name in (step.args.get("save") or {})}
    for step in scenario.steps:
        for what, value in _names(step):
            name = _with_settings(_by_profile(value, profile), settings)
            if not isinstance(name, str) or name == "" or _own(name, saved):
                continue
            if what == "filter" and (name.startswith("$") or "#" in name or "+" in name):
                return f"step at line {step.line} subscribes to {name}, outside the scenario's own topics"
            if what == "topic" and ("#" in name or "+" in name):
                continue  # a PUBLISH to a wildcard is refused, never delivered to anyone
            return f"step at line {step.line} uses the fixed {_WORDS[what]} {name}, which other scenarios may use too"
    return None


_WORDS = {"filter": "topic filter", "topic": "topic", "client_id": "ClientId"}


def _names(step: Step) -> Iterator[tuple[str, Any]]:
    """(kind, value) of every broker-wide name a step uses: filters it subscribes to, topics it publishes
    (and its Will's), the ClientId it connects with."""
    args = step.args
    packet = str(args.get("packet", "")).lower()
    connecting = step.kind in ("connect", "connected") or (step.kind == "send" and packet == "connect")
    if step.kind == "send" and packet == "subscribe":
        for subscription in args.get("subscriptions") or []:
            if isinstance(subscription, Mapping):
                yield "filter", subscription.get("topic_filter")
    elif step.kind == "send" and packet == "publish":
        yield "topic", args.get("topic")
    elif connecting:
        if "client_id" in args:
            yield "client_id", args["client_id"]
        will = args.get("will")
        if isinstance(will, Mapping):
            yield "topic", will.get("topic")
        if "will_topic" in args:
            yield "topic", args["will_topic"]


def _by_profile(value: Any, profile: str) -> Any:
    if isinstance(value, Mapping) and "by_profile" in value:
        try:
            return choose_by_profile(value["by_profile"], profile)
        except Exception:  # noqa: BLE001 - no value for this profile: the run says so, this only looks
            return None
    if isinstance(value, Mapping) and isinstance(value.get("hex"), str):
        # Bytes given in hex (invalid UTF-8, a NUL) are still a fixed name where the broker accepts them:
        # RabbitMQ takes the ClientId FF FE, and another variant of the scenario connecting with it at
        # the same time would take its session over.
        return f"(hex {value['hex'].strip()})"
    return value if isinstance(value, str) else None


def _with_settings(text: str | None, settings: Mapping[str, Any]) -> str | None:
    """`${setting:NAME}` replaced by the target's setting, which may itself hold references (`${cid}`)."""
    for _ in range(4):
        if text is None or "${setting:" not in text:
            return text
        for name, arg in set(references(text)):
            if name == "setting" and arg in settings:
                text = text.replace(f"${{setting:{arg}}}", str(settings[arg]))
        if all(arg not in settings for name, arg in references(text) if name == "setting"):
            return text
    return text


def _own(text: str, saved: set[str]) -> bool:
    for name, arg in references(text):
        if name in OWN_REFERENCES or name in saved:
            return True
        if name == "random" and int(arg if arg and arg.isdigit() else 8) >= UNIQUE_RANDOM_LENGTH:
            return True
    return False
