"""Operating points: a codec and its rate, written the same way in every CLI and config.

::

    png                          the codec alone (its one rate, or a rate chosen per stream by a sweep)
    jpeg:quality=90              one operating point
    jpeg2000:bpe=0.5             bits per element of the stream, header and side information included
    jpeg:quality=95,90,85,80     a list: one operating point per value (rate–accuracy curves)
    jpeg2000:bpe=1:quantizer=clip   other codec options after further colons

The rate option must be the codec's declared knob (:class:`~cilight.codecs.registry.RateKnob`);
other options are passed to the codec's constructor. :func:`parse_operating_points` is the one
parser; ``export.py``, ``evaluate.py``, the runtimes and the rate–distortion callback all use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cilight.codecs.registry import CODECS, RateKnob, check_codec_options, codec_class, rate_options
from cilight.errors import ConfigError


def _value(text: str) -> Any:
    """A number, a bool or a string, from the text of an option value."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


@dataclass(frozen=True)
class OperatingPoint:
    """A codec, its rate knob's value (or ``None``), and constructor options.

    ``rate is None`` means the codec's single rate (PNG) or a rate each stream gets elsewhere
    (a sweep's target bits, a runtime's per-stream ``rates``).
    """

    codec: str
    rate: int | float | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        knob = self.knob
        if self.rate is not None:
            if knob is None:
                raise ConfigError(f"codec {self.codec!r} has no rate knob, so it takes no rate value")
            object.__setattr__(self, "rate", knob.check(self.rate, self.codec))
        names = [k for k, _ in self.options]
        if knob is not None and knob.name in names:
            raise ConfigError(f"{self.codec}: give the rate as the operating point's {knob.name}, not as an option")
        if len(set(names)) != len(names):
            raise ConfigError(f"{self}: an option is given twice")
        check_codec_options(codec_class(self.codec), names)

    @property
    def knob(self) -> RateKnob | None:
        return codec_class(self.codec).rate

    @property
    def rate_options(self) -> dict[str, int | float]:
        """What ``encode(**rate)`` takes for this point: ``{knob: value}``, or nothing."""
        return {} if self.rate is None else {self.knob.name: self.rate}

    @property
    def codec_options(self) -> dict[str, Any]:
        return dict(self.options)

    def with_rate(self, rate: int | float | None) -> OperatingPoint:
        return OperatingPoint(self.codec, rate, self.options)

    def __str__(self) -> str:
        parts = [self.codec]
        if self.rate is not None:
            parts.append(f"{self.knob.name}={self.rate:g}")
        parts += [f"{k}={v}" for k, v in self.options]
        return ":".join(parts)


def parse_operating_points(text: str | Iterable[str]) -> tuple[OperatingPoint, ...]:
    """Every operating point in ``text`` (one string or several), lists expanded in order.

    Raises :class:`ConfigError` naming the piece that is wrong: an unknown codec (with the
    closest name), an option that is not ``key=value``, a rate outside the knob's range, a list
    of values for an option that is not the rate knob.
    """
    if isinstance(text, str):
        texts = [text]
    else:
        texts = list(text) if isinstance(text, Iterable) and not isinstance(text, (bytes, bytearray, dict)) else None
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ConfigError(f"operating points {text!r}: expected a string such as 'png' or 'jpeg:quality=90', "
                              "or a list of them")
    points: list[OperatingPoint] = []
    for item in texts:
        name, *fields = [f.strip() for f in item.strip().split(":")]
        if not name:
            raise ConfigError(f"operating point {item!r}: expected a codec name first, e.g. 'jpeg:quality=90'; "
                              f"codecs: {', '.join(CODECS)}")
        knob = codec_class(name).rate
        rates: list[Any] = [None]
        options = []
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(f"operating point {item!r}: {field!r} is not key=value")
            key = key.strip()
            values = [_value(v) for v in value.split(",")]
            if knob is not None and key == knob.name:
                rates = values
            elif any(key in rate_options(cls) for cls in CODECS.values()):  # another codec's rate knob
                expected = f"its rate knob is {knob.name!r}" if knob else "it has a single rate"
                raise ConfigError(f"operating point {item!r}: codec {name!r} takes no {key!r}; {expected}")
            elif len(values) > 1:
                raise ConfigError(f"operating point {item!r}: only the rate ({knob.name if knob else 'none'}) "
                                  f"takes a list of values, not {key!r}")
            else:
                options.append((key, values[0]))
        points += [OperatingPoint(name, rate, tuple(options)) for rate in rates]
    return tuple(points)


def parse_operating_point(text: str) -> OperatingPoint:
    """Exactly one operating point (``export.py --codec``, a runtime's codec)."""
    points = parse_operating_points(text)
    if len(points) != 1:
        raise ConfigError(f"operating point {text!r}: expected one, got {len(points)} ({', '.join(map(str, points))})")
    return points[0]


__all__ = ["OperatingPoint", "parse_operating_point", "parse_operating_points"]
