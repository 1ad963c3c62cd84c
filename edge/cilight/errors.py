"""Errors a user can cause.

Every exception cilight raises for bad input derives from :class:`CilightError`, so
the entry points can print its one-line message instead of a traceback. Each also
derives from the built-in exception a Python user would expect to catch
(``ValueError`` for a bad value, ``FileNotFoundError`` for a missing dataset).
"""


class CilightError(Exception):
    """Base class of the errors caused by user input (config, data, bytes, budgets)."""


class ConfigError(CilightError, ValueError):
    """A configuration value is invalid; the message names the value and what was expected."""


class DatasetError(CilightError, FileNotFoundError):
    """A dataset root is missing or incomplete; the message names the path and the layout."""
