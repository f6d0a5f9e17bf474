"""The user's folders: where a run looks for the user's targets.yaml, profiles/ and baselines/.

The folder pytest was started in, then pytest's rootdir when that is another one. Not the rootdir
alone: pytest decides it from the paths on the command line, option values among them, so
`--report-dir /some/existing/folder` moves the rootdir to a common ancestor of that folder and
the current one, where the user's files are not. Under xdist the controller decides and its
workers take its folders (workerinput), whatever rootdir they found themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORKER_KEY = "mqtt_user_folders"


def user_folders(config: Any) -> list[Path]:
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and WORKER_KEY in worker_input:
        return [Path(p) for p in worker_input[WORKER_KEY]]
    return list(dict.fromkeys([Path(config.invocation_params.dir), Path(config.rootpath)]))


def first_file(folders: list[Path], relative: str) -> Path | None:
    """The first folder's `relative` file that exists."""
    return next((folder / relative for folder in folders if (folder / relative).is_file()), None)
