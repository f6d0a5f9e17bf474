"""The `harness` command: small subcommands over a run's results and the project's data.

Each subcommand lives in its own module and registers itself in SUBCOMMANDS as
`name: "module:function"`; the function takes the remaining argv and returns an exit code.
"""

import importlib
import os
import signal
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line help)
    "coverage": ("harness.coverage:main", "statements covered by scenarios, per chapter, with a run's verdicts; reports/coverage-mqtt-*.md"),
    "compare": ("harness.report.compare:main", "compare runs over several targets: reports/comparison.html and .md"),
    "report": ("harness.report.html:main", "turn reports/ into the Allure 3 HTML report (needs Node's allure)"),
    "list": ("harness.listing:main", "the built-in scenarios, the targets and the profiles a run here can use"),
    "fuzz": ("harness.fuzz.cli:main", "fuzz a broker with verdicts; every violation found is kept as a scenario"),
    "probe": ("harness.probe.cli:main", "find out what a broker offers and draft its profile and targets entry"),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-V", "--version"):
        import harness

        print(f"harness (mqtt-conformance-harness) {harness.__version__}")
        return 0
    if not args or args[0] in ("-h", "--help"):
        print("usage: harness [--version] COMMAND [ARGS...]\n\ncommands:")
        for name, (_, help_text) in sorted(SUBCOMMANDS.items()):
            print(f"  {name:12} {help_text}")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"harness: unknown command {name!r} (commands: {', '.join(sorted(SUBCOMMANDS)) or 'none'})", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[name][0].split(":")
    # A stop from outside (CI's timeout, kill) unwinds like Ctrl-C: a broker a subcommand launched is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(getattr(importlib.import_module(module_name), function_name)(rest) or 0)
    except KeyboardInterrupt:
        print(f"harness {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
