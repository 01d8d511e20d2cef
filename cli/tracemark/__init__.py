"""Tracemark: record AI coding sessions, attest them on push, correlate them with pull requests."""

__version__ = "0.1.0"
