"""A cache of parsed, validated scenario files, so collecting the suite costs little more than reading it.

Parsing and validating YAML (line tracking, JSON Schema, spec ids) is most of what collection costs.
A file's scenarios are kept as a pickle keyed by its bytes, the path and name it is shown under, and a
fingerprint of the harness that parsed it (every source and data file of the package, by size and
modification time): an edited file, a moved one or an upgraded harness never gets a stale entry. A
broken file is never cached, so its collection error is the parser's, every time.

The cache lives in $MQTT_HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/mqtt-conformance-harness, else
~/.cache/mqtt-conformance-harness; MQTT_HARNESS_CACHE_DIR=off turns it off. It is an optimisation
only: a folder that cannot be written, or an entry that cannot be read, means parsing as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import harness

ENV_DIR = "MQTT_HARNESS_CACHE_DIR"
OFF = "off"
# Entries of edited files stay behind; past this many the older half goes.
MAX_ENTRIES = 4000
_PACKAGE = Path(harness.__file__).resolve().parent
_DATA_SUFFIXES = {".py", ".json", ".tsv", ".yaml", ".md"}


def cache_dir() -> Path | None:
    chosen = os.environ.get(ENV_DIR)
    if chosen is not None:
        return None if chosen.strip().lower() in (OFF, "") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mqtt-conformance-harness"


@cache
def fingerprint() -> str:
    """The parsing harness: its version and every code and data file of the package (not the suite)."""
    digest = hashlib.sha256(harness.__version__.encode())
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d not in ("suite", "__pycache__"))
        for name in sorted(files):
            if Path(name).suffix in _DATA_SUFFIXES:
                path = Path(folder, name)
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    digest.update(f"{path.relative_to(_PACKAGE)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def _entry(directory: Path, content: bytes, path: Path, shown: str) -> Path:
    key = hashlib.sha256(content)
    key.update(f"\0{path}\0{shown}".encode())
    return directory / fingerprint() / f"{key.hexdigest()[:32]}.pickle"


def lookup(path: Path, shown: str) -> tuple[Any, bytes | None]:
    """(the cached value or None, the file's bytes to store under once parsed; None: do not store)."""
    directory = cache_dir()
    if directory is None:
        return None, None
    try:
        content = path.read_bytes()
    except OSError:
        return None, None  # the parser says why it cannot read the file
    try:
        with _entry(directory, content, path, shown).open("rb") as stream:
            return pickle.load(stream), content
    except Exception:  # noqa: BLE001 - absent, truncated or from another Python: parse again
        return None, content


def store(path: Path, shown: str, content: bytes, value: Any) -> None:
    directory = cache_dir()
    if directory is None:
        return
    entry = _entry(directory, content, path, shown)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole, then renamed: xdist workers collect the same files at the same time.
        with tempfile.NamedTemporaryFile(dir=entry.parent, suffix=".tmp", delete=False) as stream:
            pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(stream.name, entry)
        _prune_once(directory, entry.parent)
    except Exception:  # noqa: BLE001 - a cache that cannot be written costs speed, nothing else
        with contextlib.suppress(Exception):
            os.unlink(stream.name)


@cache
def _prune_once(directory: Path, current: Path) -> None:
    """Entries of another harness are stale; of this one, keep the newest MAX_ENTRIES. Once per process:
    a cold collection stores one entry per file and need not list the folder each time."""
    for other in directory.iterdir():
        if other.is_dir() and other != current and len(other.name) == 16:
            for stale in other.iterdir():
                stale.unlink(missing_ok=True)
            other.rmdir()
    entries = list(current.iterdir())
    if len(entries) > MAX_ENTRIES:
        entries.sort(key=lambda p: p.stat().st_mtime)
        for old in entries[: len(entries) // 2]:
            old.unlink(missing_ok=True)
