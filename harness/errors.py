"""Errors the harness reports as one line, never as a traceback."""


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
