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


def test_every_vendor_profile_has_a_fixture() -> None:
    profiles = {p.stem for p in (Path(__file__).resolve().parents[2] / "harness" / "profiles").glob("*.yaml")} - {"strict"}
    assert profiles <= {p.stem for p in FIXTURES}
