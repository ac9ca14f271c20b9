"""Exceptions a user is meant to read: each message says what is wrong and where."""

from __future__ import annotations


class UsagecastError(Exception):
    """An expected failure with a message a user can act on; the CLI exits 1 without a trace."""


class InputError(UsagecastError):
    """An input file cannot be read at all (not a row-level problem, which is quarantined)."""


class DataQualityError(UsagecastError):
    """A critical expectation failed: nothing downstream may use the batch."""
