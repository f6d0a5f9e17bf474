"""Lets a plain `pytest` in the repository root load the harness plugin without installing it."""

pytest_plugins = ["harness.plugin"]
