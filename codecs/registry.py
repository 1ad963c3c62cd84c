"""The codec registry: every feature codec is declared once, with its container id and rate knob.

A codec class registers itself with :func:`register_codec`, declaring

* ``name`` — what configs, CLIs and operating points call it (``png``, ``jpeg:quality=90``);
* ``container_id`` — the byte that names it in the container header
  (:mod:`cilight.codecs.container`), or ``None`` for a model of a codec that writes no bytes
  (the differentiable JPEG2000 proxy);
* ``rate`` — its one rate parameter, a :class:`RateKnob` (``quality``, ``bpe``, ``step``), or
  ``None`` for a codec with a single rate (lossless PNG).

Registration checks all three, so a codec with a missing or clashing id fails when it is
registered, not at its first encode. Everything that names codecs — :func:`get_codec`,
:func:`decode`, the container, operating points, the sweeps' stream coders and the runtimes —
reads this one table.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from cilight.errors import ConfigError

MAX_CONTAINER_ID = 255  # one header byte


@dataclass(frozen=True)
class RateKnob:
    """The parameter that sets a codec's rate.

    Attributes:
        name: option name in ``encode(**rate)`` and operating points (``quality``, ``bpe``, ``step``).
        integer: whether the values are integers (JPEG quality) or reals.
        low, high: the closed range of valid values.
        more_bits_when_higher: ``True`` when a larger value spends more bits (quality, bpe),
            ``False`` when it spends fewer (a quantization step).
        description: what the value means, for error messages and ``--help``.
    """

    name: str
    integer: bool
    low: float
    high: float
    more_bits_when_higher: bool
    description: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"rate knob name {self.name!r}: expected an identifier")
        if not self.low <= self.high:
            raise ConfigError(f"rate knob {self.name}: range [{self.low}, {self.high}] is empty")

    def check(self, value: object, codec: str) -> int | float:
        """``value`` as this knob's type, or a :class:`ConfigError` naming the codec, value and range."""
        kind = "an integer" if self.integer else "a number"
        valid = not isinstance(value, bool) and isinstance(value, (int, float))
        if valid and self.integer:
            valid = float(value).is_integer()
        if not valid or not math.isfinite(value) or not self.low <= value <= self.high:
            high = "∞" if math.isinf(self.high) else f"{self.high:g}"
            raise ConfigError(f"{codec} {self.name}={value!r}: expected {kind} from {self.low:g} to {high} "
                              f"({self.description})")
        return int(value) if self.integer else float(value)


CODECS: dict[str, type] = {}
_BY_CONTAINER_ID: dict[int, str] = {}


def register_codec(cls: type) -> type:
    """Class decorator: declare ``cls`` under ``cls.name`` with its ``container_id`` and ``rate``.

    Re-registering the same class (a re-imported module) is allowed; another class with the
    same name or container id is a :class:`ConfigError`.
    """
    name, container_id, rate = getattr(cls, "name", None), getattr(cls, "container_id", None), getattr(cls, "rate", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"codec class {cls.__name__} needs a class attribute name (an identifier), got {name!r}")
    if container_id is not None and (isinstance(container_id, bool) or not isinstance(container_id, int)
                                     or not 1 <= container_id <= MAX_CONTAINER_ID):
        raise ConfigError(f"codec {name!r}: container_id={container_id!r}, expected an integer from 1 to "
                          f"{MAX_CONTAINER_ID} (or None for a codec that writes no bytes)")
    if rate is not None and not isinstance(rate, RateKnob):
        raise ConfigError(f"codec {name!r}: rate must be a RateKnob or None, got {type(rate).__name__}")
    previous = CODECS.get(name)
    if previous is not None and previous.__qualname__ != cls.__qualname__:
        raise ConfigError(f"codec name {name!r} is already registered by {previous.__module__}.{previous.__qualname__}")
    if container_id is not None:
        owner = _BY_CONTAINER_ID.get(container_id)
        if owner is not None and owner != name:
            raise ConfigError(f"codec {name!r}: container id {container_id} is already used by codec {owner!r}")
        _BY_CONTAINER_ID[container_id] = name
    CODECS[name] = cls
    return cls


def codec_class(name: str) -> type:
    """The registered class called ``name``; a typo gets the closest names."""
    if name not in CODECS:
        close = difflib.get_close_matches(str(name), CODECS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"codec={name!r}: expected one of {', '.join(CODECS)}{hint}")
    return CODECS[name]


def codec_name_for_id(container_id: int) -> str | None:
    """The codec a container header's id byte names, or ``None`` for an unknown id."""
    return _BY_CONTAINER_ID.get(container_id)


def container_id_of(name: str) -> int | None:
    """The container id of codec ``name`` (``None``: unknown or writes no bytes)."""
    cls = CODECS.get(name)
    return None if cls is None else cls.container_id


__all__ = ["CODECS", "RateKnob", "codec_class", "codec_name_for_id", "container_id_of", "register_codec"]
