"""Scenario files: schema, loading, values, matchers and the runner."""
