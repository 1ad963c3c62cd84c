"""What the three entry points share: a user error becomes one line and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from cilight.errors import CilightError


def run_main(command: Callable[[Any], int], argv: Any = None) -> int:
    """``command(argv)``; a :class:`~cilight.errors.CilightError` is printed as ``error: …`` (status 2)."""
    try:
        return command(argv)
    except CilightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
