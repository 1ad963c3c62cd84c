"""Stream coders: what a rate sweep needs of a codec, derived from any registered codec.

A rate sweep (Alvar & Bajić, IEEE TIP 2021, §VI-A) codes every stream of every image at a
target number of bits and runs the cloud half on what comes back. A *stream coder* is that
view of a codec:

* ``prepare(features [B, C, H, W]) -> state`` — whatever can be done once per stream;
* ``code(state, bits) -> (reconstruction [B, C, H, W], bits [B])`` — the decoded tensor and
  the bits actually spent (container included), for a target of ``bits`` per sample;
* ``floor(features) -> bits`` — the least the codec can spend on any of the samples;
* ``code_at(state, **rate) -> (reconstruction, bits [B])`` — every sample at one value of the
  codec's rate knob (an operating point of a rate–accuracy curve).

Every registered codec provides one through its ``stream_coder`` class method: byte codecs
through :class:`~cilight.codecs.image.CodecCoder` (their rate knob searched for the target, or
their own rate control), the JPEG2000 proxy through
:class:`~cilight.ci_models.proxy.ProxyCoder`. :func:`stream_coder` is the one way to get them.
"""

from __future__ import annotations

from typing import Any, Protocol

from cilight.codecs.operating_point import OperatingPoint, parse_operating_point
from cilight.codecs.registry import codec_class
from cilight.errors import ConfigError


class StreamCoder(Protocol):
    """Reconstructions and bits come back as arrays of the coder's kind: numpy from byte codecs (the edge's
    byte path), tensors from the proxy (which models a codec on the training device); a sweep takes either
    (``torch.as_tensor``)."""

    name: str

    def prepare(self, features: Any) -> Any: ...

    def code(self, state: Any, bits: float) -> tuple[Any, Any]: ...

    def floor(self, features: Any) -> float: ...

    def code_at(self, state: Any, **rate) -> tuple[Any, Any]: ...


def stream_coder(point: str | OperatingPoint) -> StreamCoder:
    """The stream coder of ``point`` (``"proxy"``, ``"jpeg2000"``, ``"jpeg:quantizer=clip"`` …).

    The sweep chooses each stream's rate, so the point names no rate value.
    """
    point = parse_operating_point(point) if isinstance(point, str) else point
    return _coder_of(point)


def point_coder(point: str | OperatingPoint) -> tuple[StreamCoder, dict]:
    """``(stream coder, rate options)`` of one operating point: ``coder.code_at(state, **rate)``
    codes every sample at it (a point of a rate–accuracy curve)."""
    point = parse_operating_point(point) if isinstance(point, str) else point
    return _coder_of(point.with_rate(None)), point.rate_options


def _coder_of(point: OperatingPoint) -> StreamCoder:
    if point.rate is not None:
        raise ConfigError(f"coder {str(point)!r}: a rate sweep sets every stream's rate itself; "
                          f"give the codec without {point.knob.name}")
    return codec_class(point.codec).stream_coder(**point.codec_options)


__all__ = ["StreamCoder", "point_coder", "stream_coder"]
