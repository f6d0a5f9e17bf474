"""Probe every broker the harness launches and print docs/probe.md's table: the probe's time per broker,
what it drafted, and how the draft compares with the committed profile (field by field, as
harness.probe.compare decides; tests/probe checks the same agreement).

    python3 benchmarks/probe_bench.py [TARGET ...]      # default: every launchable target
"""

from __future__ import annotations

import sys

from harness.probe import run_probe
from harness.probe.compare import against_target
from harness.targets import TargetNotInstalled
from harness.targets.reach import default_account, started

TARGETS = ["reference", "reference-limited", "mosquitto", "amqtt", "aedes", "rabbitmq", "ejabberd",
           "reference-cumulocity", "reference-cumulocity-legacy", "reference-itron", "reference-watson-iot",
           "reference-cloudplugs"]
SHOWN = ("qos1", "qos2", "retain", "will", "persistent_session", "several_in_flight", "wildcard_subscriptions",
         "shared_subscriptions", "subscription_identifiers", "topic_alias", "zero_length_client_id",
         "client_id_over_23_refused")
SHORT = {"persistent_session": "persistent", "several_in_flight": "in flight", "wildcard_subscriptions": "wildcards",
         "shared_subscriptions": "shared", "subscription_identifiers": "sub ids", "topic_alias": "aliases",
         "zero_length_client_id": "empty id", "client_id_over_23_refused": "id > 23 refused"}


def main(names: list[str]) -> int:
    print("| target | probe | protocols | " + " | ".join(SHORT.get(k, k) for k in SHOWN)
          + " | keepalive_grace (committed) | differences |")
    print("| --- | ---: | --- |" + " :---: |" * len(SHOWN) + " ---: | --- |")
    for name in names or TARGETS:
        try:
            with started(name) as session:
                endpoint = session.endpoint()
                draft, _, seconds = run_probe(endpoint.address, default_account(endpoint))
                found = against_target(draft, session)
                committed = float(session.settings.get("keepalive_grace", 1.0))
        except TargetNotInstalled as exc:
            print(f"| {name} | not installed: {exc} |")
            continue
        cells = []
        for key in SHOWN:
            finding = draft.capabilities.get(key)
            cells.append("–" if finding is None else ("yes" if finding.value else "no"))
        grace = draft.settings.get("keepalive_grace")
        print(f"| {name} | {seconds:.1f} s | {', '.join(v.label for v in draft.accepted())} | " + " | ".join(cells)
              + f" | {grace.value if grace else '?'} ({committed:g}) | "
              + ("none" if not found else "; ".join(map(str, found))) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
