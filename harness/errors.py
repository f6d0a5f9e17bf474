"""Errors the harness reports as one line, never as a traceback."""

from pathlib import Path
from typing import Any

import yaml


class HarnessError(Exception):
    """A problem with the setup rather than the broker: bad config, unknown target, unreachable broker.

    Its message is one line that names the file, field or endpoint at fault.
    """


class ScenarioFileError(HarnessError):
    """A scenario file that cannot be used: YAML syntax, schema violation, bad value."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {problem}")


def load_data_file(path: Path, label: str, error: type[Exception] = HarnessError) -> Any:
    """A small YAML data file (targets, baselines, coverage), or `error` with one line starting `label`.

    An empty file reads as {}; what the mapping must hold is the caller's to check.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise error(f"{label}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{label}: YAML syntax: {str(exc).splitlines()[0]}") from None
