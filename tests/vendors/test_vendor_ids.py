"""The vendor behaviour ids (harness/spec/vendors.tsv, from shared VENDORS.md): each is cited by a
scenario, or listed below as pending with the reason, so the gap is visible rather than silent."""

from pathlib import Path

import pytest

from harness.errors import ScenarioFileError
from harness.scenarios.model import load_scenarios
from harness.spec import vendors
from harness.targets.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]

# Not yet covered: id -> why. An id leaves this list when a scenario cites it (the test insists).
PENDING: dict[str, str] = {
}


def cited_refs() -> set[str]:
    refs: set[str] = set()
    for path in sorted((ROOT / "scenarios").rglob("*.yaml")):
        try:
            loaded = load_scenarios(path)
        except ScenarioFileError:
            # Another area's file being edited: the scenario collection reports it. A broken vendor
            # file leaves its ids uncited, which the tests below catch.
            continue
        for scenario in loaded:
            refs.update(scenario.refs)
    return refs


def test_every_vendor_id_is_cited_or_pending() -> None:
    cited = cited_refs()
    missing = sorted(set(vendors.behaviours()) - cited - set(PENDING))
    assert not missing, f"vendor ids no scenario cites (cite them or list them in PENDING): {missing}"


def test_pending_ids_are_real_and_not_yet_cited() -> None:
    cited = cited_refs()
    assert not set(PENDING) - set(vendors.behaviours()), "PENDING names an id vendors.tsv does not have"
    covered = sorted(set(PENDING) & cited)
    assert not covered, f"now cited by a scenario, remove from PENDING: {covered}"


def test_registry_platforms_and_ids() -> None:
    table = vendors.behaviours()
    assert len(table) == 46  # VENDORS.md lists 46 behaviours
    assert {b.platform for b in table.values()} == {"cumulocity", "cumulocity-legacy", "cloudplugs", "itron", "watson-iot"}
    assert vendors.is_vendor_ref("C8Y-NOPE") and not vendors.is_vendor_ref("MQTT-3.1.0-1")


def test_cited_vendor_ids_have_a_profile_declaring_them() -> None:
    """Criterion 1 of VENDORS.md: a platform's profile exists for every id a scenario cites."""
    for ref in sorted(cited_refs()):
        behaviour = vendors.lookup(ref)
        if behaviour is not None:
            profile = load_profile(behaviour.platform)
            text = (ROOT / "harness" / "profiles" / f"{profile.name}.yaml").read_text(encoding="utf-8")
            assert ref in text, f"{ref}: harness/profiles/{profile.name}.yaml does not name it"


@pytest.mark.parametrize("ref, ok", [("C8Y-CLIENTID-31", True), ("C8Y-CLIENTID-32", False), ("W-NOPE", False)])
def test_model_accepts_only_known_vendor_ids(tmp_path: Path, ref: str, ok: bool) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "defaults: {protocol: '3.1.1'}\n"
        "scenarios:\n"
        f"  - {{id: x, title: X, refs: [{ref}], steps: [{{connected: {{}}}}]}}\n",
        encoding="utf-8",
    )
    if ok:
        assert load_scenarios(path)[0].refs == (ref,)
    else:
        with pytest.raises(ScenarioFileError, match="not a vendor behaviour id"):
            load_scenarios(path)
