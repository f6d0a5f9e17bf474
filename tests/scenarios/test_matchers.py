from harness.scenarios.matchers import describe_expected, mismatches


def test_plain_values_compare_equal_and_report_the_difference():
    assert mismatches(5, 5) == []
    assert mismatches(5, 4) == ["value: expected 5, got 4"]


def test_mapping_is_a_subset_match():
    actual = {"reason_code": 0, "session_present": False, "properties": {}}
    assert mismatches({"reason_code": 0}, actual) == []
    assert mismatches({"reason_code": 5}, actual) == ["reason_code: expected 5, got 0"]


def test_text_matches_bytes_on_the_wire():
    assert mismatches({"payload": "hello"}, {"payload": b"hello"}) == []
    assert mismatches({"payload": "hello"}, {"payload": b"hell"}) != []
    assert mismatches({"topic": b"\xef\xbb\xbfa"}, {"topic": "\ufeffa"}) == []


def test_booleans_do_not_match_other_numbers():
    assert mismatches({"session_present": True}, {"session_present": True}) == []
    assert mismatches({"session_present": True}, {"session_present": False}) != []
    assert mismatches({"session_present": False}, {"session_present": 2}) != []


def test_one_of_not_any_absent():
    assert mismatches({"reason_code": {"one_of": [4, 5]}}, {"reason_code": 5}) == []
    assert mismatches({"reason_code": {"one_of": [4, 5]}}, {"reason_code": 0}) == [
        "reason_code: expected one of [4, 5], got 0"
    ]
    assert mismatches({"reason_code": {"not": 0}}, {"reason_code": 1}) == []
    assert mismatches({"reason_code": {"not": 0}}, {"reason_code": 0}) != []
    assert mismatches({"properties": {"x": {"any": True}}}, {"properties": {"x": 1}}) == []
    assert mismatches({"properties": {"x": {"any": True}}}, {"properties": {}}) != []
    assert mismatches({"properties": {"x": {"absent": True}}}, {"properties": {}}) == []
    assert mismatches({"properties": {"x": {"absent": True}}}, {"properties": {"x": 1}}) != []


def test_one_of_with_absent_accepts_a_missing_field():
    may_omit = {"properties": {"reason_string": {"one_of": ["why", {"absent": True}]}}}
    assert mismatches(may_omit, {"properties": {}}) == []
    assert mismatches(may_omit, {"properties": {"reason_string": "why"}}) == []
    assert mismatches(may_omit, {"properties": {"reason_string": "other"}}) != []
    assert mismatches({"x": {"one_of": [1, 2]}}, {}) == ["x: expected one of [1, 2], but it is absent"]
    assert mismatches({"x": {"one_of": [{"any": True}, {"absent": True}]}}, {}) == []


def test_lists_compare_item_by_item():
    assert mismatches({"reason_codes": [0, 0x80]}, {"reason_codes": [0, 0x80]}) == []
    assert mismatches({"reason_codes": [0, 0x80]}, {"reason_codes": [0, 1]}) == ["reason_codes[1]: expected 128, got 1"]
    assert mismatches({"reason_codes": [0]}, {"reason_codes": [0, 1]}) != []


def test_describe_expected_reads_like_a_packet():
    assert describe_expected({"packet": "connack", "reason_code": {"one_of": [4, 5]}}) == "CONNACK reason_code=one of [4, 5]"


def test_chosen_says_which_way_each_one_of_went() -> None:
    chosen: list[str] = []
    expected = {"reason_code": {"one_of": [4, 5]}, "session_present": False,
                "reason_codes": [1, {"one_of": [0x87, 0x80]}], "reason_string": {"one_of": [{"any": True}, {"absent": True}]}}
    assert mismatches(expected, {"reason_code": 5, "session_present": False, "reason_codes": [1, 0x87]}, chosen=chosen) == []
    assert chosen == ["reason_code=5", "reason_codes[1]=0x87", "reason_string absent"]
    chosen.clear()
    assert mismatches({"reason_code": {"one_of": [4, 5]}}, {"reason_code": 0}, chosen=chosen)
    assert chosen == []  # a mismatch took no branch
