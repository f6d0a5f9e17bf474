"""Lets a plain `pytest` in the repository root load the harness plugin without installing it.

Installed (`pip install -e .` or a wheel), the plugin comes in through its pytest11 entry point and
this file defines nothing: a run from another folder that collects the built-in suite through this
clone (an editable install) reaches this file as a non-top-level conftest, where pytest refuses
`pytest_plugins`.
"""

from importlib.metadata import entry_points

if not any(entry.value == "harness.plugin" for entry in entry_points(group="pytest11")):
    pytest_plugins = ["harness.plugin"]
