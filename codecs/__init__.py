"""Feature codecs: what turns a quantized feature tensor into bytes and back.

Imported as ``cilight.codecs`` (never as ``codecs``: that is the standard-library module).
This package imports nothing from ``cilight.ci_models`` or ``cilight.allocation``.
"""

from cilight.errors import CilightError


class CodecError(CilightError, ValueError):
    """Bytes that cannot be decoded (bad, truncated or foreign), or an impossible rate request."""


__all__ = ["CodecError"]
