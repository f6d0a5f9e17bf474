"""The ready-made broker configs (harness/broker/fixtures/<platform>.yaml) load and match their profile."""

from pathlib import Path

import pytest

from harness.broker.config import load_config
from harness.targets.profiles import load_profile

FIXTURES = sorted((Path(__file__).resolve().parents[2] / "harness" / "broker" / "fixtures").glob("*.yaml"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_loads_with_its_profiles_personality(path: Path) -> None:
    config = load_config(path)
    assert config.personality == load_profile(path.stem).personality


def test_every_personality_profile_has_a_fixture() -> None:
    # Profiles of real brokers (amqtt, rabbitmq, ...) describe a broker the harness launches, not an
    # imitation by the reference broker (their personality is the default, strict), so only profiles
    # naming a platform personality need a ready-made fixture config.
    profile_dir = Path(__file__).resolve().parents[2] / "harness" / "profiles"
    personalities = {p.stem for p in profile_dir.glob("*.yaml") if load_profile(p.stem).personality != "strict"}
    assert personalities, "no profile declares a personality"
    assert personalities <= {p.stem for p in FIXTURES}
