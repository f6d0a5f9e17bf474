"""The cache of parsed scenario files (harness.scenarios.cache): a warm cache skips the parser, a change never
reads a stale entry, and a broken file is its collection error every time."""

from pathlib import Path

import pytest

from harness.errors import ScenarioFileError
from harness.scenarios import cache, model

pytest_plugins = ["pytester"]

GOOD = """\
scenarios:
  - id: ping
    title: PINGREQ gets PINGRESP
    protocol: "3.1.1"
    refs: [MQTT-3.12.4-1]
    steps:
      - connected: {}
      - send: {packet: pingreq}
      - expect: {packet: pingresp}
"""


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    return folder


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the real parser was asked for, in order."""
    seen: list[str] = []
    parse = model._parse_scenarios

    def counting(path: Path, shown: str, content: bytes | None) -> list[model.Scenario]:
        seen.append(shown)
        return parse(path, shown, content)

    monkeypatch.setattr(model, "_parse_scenarios", counting)
    return seen


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios" / "a.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_warm_cache_gives_the_same_scenarios_without_parsing(tmp_path: Path, cache_dir: Path, parses: list[str]) -> None:
    path = write(tmp_path, GOOD)
    first = model.load_scenarios(path, "scenarios/a.yaml")
    again = model.load_scenarios(path, "scenarios/a.yaml")
    assert parses == ["scenarios/a.yaml"]
    assert again == first
    assert again[0].steps[2].args == {"packet": "pingresp"} and again[0].path == path


def test_an_edited_file_is_parsed_again(tmp_path: Path, cache_dir: Path, parses: list[str]) -> None:
    path = write(tmp_path, GOOD)
    model.load_scenarios(path, "a")
    write(tmp_path, GOOD.replace("PINGREQ gets PINGRESP", "a new title"))
    assert model.load_scenarios(path, "a")[0].title == "a new title"
    assert len(parses) == 2


def test_a_broken_file_is_an_error_every_time_even_after_a_good_version(tmp_path: Path, cache_dir: Path) -> None:
    path = write(tmp_path, GOOD)
    model.load_scenarios(path, "scenarios/a.yaml")
    write(tmp_path, GOOD.replace("pingresp", "pingrsp"))
    for _ in range(2):
        with pytest.raises(ScenarioFileError, match=r"scenarios/a.yaml:\d+: expect: unknown packet type 'pingrsp'"):
            model.load_scenarios(path, "scenarios/a.yaml")


def test_the_name_shown_is_part_of_the_key(tmp_path: Path, cache_dir: Path) -> None:
    """An error message names the file as it was shown: a cached copy under another name must not leak it."""
    path = write(tmp_path, GOOD)
    model.load_scenarios(path, "one/a.yaml")
    assert len(list(cache_dir.rglob("*.pickle"))) == 1
    model.load_scenarios(path, "two/a.yaml")
    assert len(list(cache_dir.rglob("*.pickle"))) == 2


def test_another_harness_does_not_read_the_entries(tmp_path: Path, cache_dir: Path, parses: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    model.load_scenarios(path, "a")
    monkeypatch.setattr(cache, "fingerprint", lambda: "0123456789abcdef")
    model.load_scenarios(path, "a")
    assert len(parses) == 2
    assert [p.name for p in cache_dir.iterdir()] == ["0123456789abcdef"]  # the old harness's entries are gone


def test_off_means_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[str]) -> None:
    monkeypatch.setenv(cache.ENV_DIR, "off")
    path = write(tmp_path, GOOD)
    model.load_scenarios(path, "a")
    model.load_scenarios(path, "a")
    assert len(parses) == 2


def test_an_unusable_cache_folder_costs_nothing_but_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(cache.ENV_DIR, str(blocker))
    path = write(tmp_path, GOOD)
    assert model.load_scenarios(path, "a")[0].id == "ping"


def test_a_corrupt_entry_is_parsed_again(tmp_path: Path, cache_dir: Path, parses: list[str]) -> None:
    path = write(tmp_path, GOOD)
    model.load_scenarios(path, "a")
    (entry,) = cache_dir.rglob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert model.load_scenarios(path, "a")[0].id == "ping"
    assert len(parses) == 2


def test_collecting_the_suite_twice_parses_nothing_the_second_time(pytester: pytest.Pytester, cache_dir: Path) -> None:
    """The plugin collects through the cache: a second collection of the built-in suite reads no YAML."""
    first = pytester.runpytest_subprocess("--collect-only", "-q", "--suite", "builtin", "-p", "no:cacheprovider")
    entries = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache_dir.rglob("*.pickle")}
    assert first.ret == 0 and entries
    second = pytester.runpytest_subprocess("--collect-only", "-q", "--suite", "builtin", "-p", "no:cacheprovider")
    assert second.ret == 0
    # A parse would have written its entry anew (a new file renamed into place).
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache_dir.rglob("*.pickle")} == entries
    assert first.outlines[-1].split(" in ")[0] == second.outlines[-1].split(" in ")[0]  # "N tests collected"
