"""The one error the codecs raise for bytes they cannot decode or rates they cannot reach."""

from cilight.errors import CilightError


class CodecError(CilightError, ValueError):
    """Bytes that cannot be decoded (bad, truncated or foreign), or an impossible rate request."""
