"""What the three entry points share: every mistake a user can make ends as one line.

* a :class:`~cilight.errors.CilightError` (a bad value, file or budget) prints ``error: …`` and exits
  with status 2, as an argument error does;
* an ``OSError`` (a folder that cannot be written, a disk that is full) prints ``error: …`` naming
  the path and exits with status 1;
* :class:`ArgumentParser` turns argparse's two-line usage error into a :class:`ConfigError` with the
  nearest valid choice.

``CILIGHT_DEBUG=1`` keeps the traceback of either.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from cilight.errors import CilightError, ConfigError


def run_main(command: Callable[[Any], int], argv: Any = None) -> int:
    """``command(argv)``, with a user error printed as one line (status 2) and an OS error too (status 1)."""
    try:
        return command(argv)
    except CilightError as err:
        if os.environ.get("CILIGHT_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if os.environ.get("CILIGHT_DEBUG"):
            raise
        print(f"error: {os_message(err)}", file=sys.stderr)
        return 1


def os_message(err: OSError) -> str:
    """``strerror: path`` (and the second path of a rename), or the message, on one line."""
    if err.strerror and err.filename is not None:
        paths = " → ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
        return f"{err.strerror}: {paths}"
    return " ".join(str(err).split()) or type(err).__name__


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one :class:`ConfigError` line (suggesting the nearest choice)
    instead of a usage block and ``SystemExit``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), options, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        raise ConfigError(f"{message} (see {self.prog} --help)")


__all__ = ["ArgumentParser", "os_message", "run_main"]
