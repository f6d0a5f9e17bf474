"""Once a run is over, the runner clears the retained messages it published and waits until the broker shows
it has: a failed run never reaches its own cleanup, and a passed one's clearing PUBLISH may still be queued
when the next scenario connects. No leftover can then reach later scenarios (amqtt sends retained messages
to clients that never subscribed to them)."""

import textwrap
from collections.abc import Iterator

import pytest

from harness.launch import RunningBroker, launch
from harness.scenarios.model import load_scenarios
from harness.scenarios.runner import Endpoint, ScenarioFailed, ScenarioRunner


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    running = launch("reference", tmp_path_factory.mktemp("reference"))
    yield running
    running.stop()


def _run(tmp_path, broker: RunningBroker, steps: str, name: str) -> None:
    text = "defaults: {protocol: '3.1.1', area: test}\nscenarios:\n  - id: s\n    title: t\n    refs: []\n    steps:\n"
    text += textwrap.indent(textwrap.dedent(steps), " " * 6)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    scenario, = load_scenarios(path)
    endpoint = Endpoint(host=broker.host, port=broker.port, accounts=broker.accounts)
    ScenarioRunner(scenario, endpoint, name, timeout=1.0).run()


PUBLISH_RETAINED = """
- connected:
- send: {packet: publish, topic: cleanup/TOPIC, payload: left-behind, qos: 1, packet_id: 1, retain: true}
- expect: {packet: puback, packet_id: 1}
"""
NOTHING_RETAINED = """
- connected:
- send: {packet: subscribe, packet_id: 1, subscriptions: [{topic_filter: cleanup/TOPIC, qos: 0}]}
- expect: {packet: suback, packet_id: 1}
- expect_nothing:
- disconnect:
"""


def test_a_failed_run_clears_the_retained_messages_it_published(tmp_path, broker: RunningBroker) -> None:
    failing = PUBLISH_RETAINED.replace("TOPIC", "failed") + "- expect: {packet: pingresp}\n"  # nothing comes: fails
    with pytest.raises(ScenarioFailed):
        _run(tmp_path, broker, failing, "fail")
    _run(tmp_path, broker, NOTHING_RETAINED.replace("TOPIC", "failed"), "check1")


def test_a_completed_run_leaves_nothing_either(tmp_path, broker: RunningBroker) -> None:
    _run(tmp_path, broker, PUBLISH_RETAINED.replace("TOPIC", "passed") + "- disconnect:\n", "pass")
    _run(tmp_path, broker, NOTHING_RETAINED.replace("TOPIC", "passed"), "check2")
