"""MQTT broker conformance harness: YAML scenarios run by a pytest plugin against any broker."""

__version__ = "0.2.0"
