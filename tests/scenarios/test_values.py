import pytest

from harness.scenarios.values import UnresolvableValue, Variables, resolve
from harness.targets import Account
from harness.wire import RawField


@pytest.fixture
def variables() -> Variables:
    return Variables(
        cid="habcde001",
        profile="cumulocity",
        accounts={"default": Account("user1", "pw1"), "restricted": Account("ro", "pw2")},
        acl_allowed_prefix="acl/allowed",
        saved={"pid": 7},
    )


def test_run_variables(variables):
    assert resolve("${cid}b", variables) == "habcde001b"
    assert resolve("${topic}/x", variables) == "mqc/habcde001/x"
    assert resolve("${acl_allowed}/a", variables) == "acl/allowed/habcde001/a"
    assert resolve("${user}:${password}", variables) == "user1:pw1"
    assert resolve("${user:restricted}", variables) == "ro"


def test_a_whole_string_reference_keeps_its_type(variables):
    assert resolve("${pid}", variables) == 7
    assert resolve("id ${pid}", variables) == "id 7"


def test_random_has_the_length_asked_and_is_alphanumeric(variables):
    value = resolve("${random:24}", variables)
    assert len(value) == 24 and value.isalnum()
    assert resolve("${random:24}", variables) != value


def test_by_profile_picks_the_profile_then_default(variables):
    assert resolve({"by_profile": {"strict": 2, "cumulocity": 5}}, variables) == 5
    assert resolve({"by_profile": {"strict": 2, "default": 3}}, variables) == 3
    with pytest.raises(UnresolvableValue, match="no value for profile 'cumulocity'"):
        resolve({"by_profile": {"strict": 2}}, variables)


def test_hex_forms(variables):
    assert resolve({"hex": "ed a0 80"}, variables) == b"\xed\xa0\x80"
    raw = resolve({"raw_hex": "00:05"}, variables)
    assert isinstance(raw, RawField) and raw == b"\x00\x05"
    with pytest.raises(UnresolvableValue, match="not hex"):
        resolve({"hex": "zz"}, variables)


def test_matchers_survive_resolution(variables):
    assert resolve({"reason_code": {"one_of": ["${pid}", 5]}}, variables) == {"reason_code": {"one_of": [7, 5]}}


def test_unknown_variable_and_account(variables):
    with pytest.raises(UnresolvableValue, match=r"unknown variable \$\{nope\}"):
        resolve("${nope}", variables)
    with pytest.raises(UnresolvableValue, match="no account named 'admin'"):
        resolve("${user:admin}", variables)


def test_saved_names_may_hold_digits(variables):
    variables.saved["p1"] = 11
    assert resolve("${p1}", variables) == 11
    assert resolve("x${p1}y", variables) == "x11y"


def test_a_malformed_reference_is_an_error_not_literal_text(variables):
    with pytest.raises(UnresolvableValue, match="malformed variable reference"):
        resolve("a${Upper}b", variables)


def test_hmac_sha256_answers_a_saved_nonce_with_the_password(variables):
    from harness.broker.auth import hmac_sha256_response

    variables.saved["nonce"] = b"\x00\x01nonce\xff"
    answer = resolve({"hmac_sha256": {"key": "${password}", "data": "${nonce}"}}, variables)
    assert answer == hmac_sha256_response("pw1", b"\x00\x01nonce\xff")  # what the reference broker checks
    assert len(answer) == 32
    assert resolve({"hmac_sha256": {"key": "k", "data": "text"}}, variables) != answer


def test_hmac_sha256_needs_key_and_data(variables):
    with pytest.raises(UnresolvableValue, match="hmac_sha256: expected"):
        resolve({"hmac_sha256": {"key": "k"}}, variables)
    with pytest.raises(UnresolvableValue, match="data must be text or bytes"):
        resolve({"hmac_sha256": {"key": "k", "data": 5}}, variables)
