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

The codecs that write bytes register here, in the edge's own install (``cilight-edge``, no torch). A
codec that needs more — the differentiable JPEG2000 proxy of the training install — is a plugin: its
distribution names the module that registers it under the entry-point group :data:`PLUGIN_GROUP`
(``[project.entry-points."cilight.codecs"]``), imported the first time a name is not found, so ``proxy``
is a codec wherever ``cilight`` is installed and unknown on an edge.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from cilight.errors import ConfigError

MAX_CONTAINER_ID = 255  # one header byte
PLUGIN_GROUP = "cilight.codecs"  # entry points naming modules that register codecs (cilight's proxy, users' own)


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


def nearest(name: object, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (the same letters in another case first, then difflib), or ``None``."""
    known = list(known)
    text = str(name)
    for candidate in known:
        if candidate.lower() == text.lower():
            return candidate
    close = difflib.get_close_matches(text.lower(), known, n=1)
    return close[0] if close else None


@functools.cache
def load_plugins() -> tuple[str, ...]:
    """Import every module registered under the entry-point group :data:`PLUGIN_GROUP` (once); returns their
    names. A plugin that fails to import is skipped: an edge install without its dependencies lacks the codec."""
    loaded = []
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except ImportError:
            continue
        loaded.append(entry.name)
    return tuple(loaded)


def codec_class(name: str) -> type:
    """The registered class called ``name`` (a plugin's included); a typo gets the closest names."""
    if isinstance(name, str) and name not in CODECS:
        load_plugins()
    if not isinstance(name, str) or name not in CODECS:
        close = nearest(name, CODECS) if isinstance(name, str) and name.strip() else None
        hint = f" (did you mean {close!r}?)" if close else ""
        what = ("an empty codec name" if isinstance(name, str) and not name.strip() else
                "unknown codec" if isinstance(name, str) else f"a {type(name).__name__}, not a codec name")
        raise ConfigError(f"codec={name!r}: {what}; expected one of {', '.join(CODECS)}{hint}")
    return CODECS[name]


def check_options(codec: str, given: Iterable[str], known: Iterable[str], kind: str = "option") -> None:
    """One :class:`ConfigError` for the first name in ``given`` that is not in ``known``.

    The message names the codec, the option, the nearest known name (a typo gets ``did you mean``)
    and every known one: ``unknown option 'qualty' for codec jpeg; did you mean 'quality'? options:
    quality, quantizer, bits, tiling, clip_width``. ``kind`` is what the names are (``option``,
    ``rate option``).
    """
    known = list(known)
    for name in given:
        if name in known:
            continue
        if not known:
            raise ConfigError(f"codec {codec} takes no {kind}s, got {name!r}")
        close = nearest(name, known)
        hint = f"; did you mean {close!r}?" if close else ";"
        raise ConfigError(f"unknown {kind} {name!r} for codec {codec}{hint} {kind}s: {', '.join(known)}")


def rate_options(cls: type) -> tuple[str, ...]:
    """What ``encode(**rate)`` of codec class ``cls`` takes: its knob's name and the aliases it declares
    (``rate_aliases``, e.g. jpeg2000's ``target_bits``); none for a codec with a single rate."""
    knob = getattr(cls, "rate", None)
    return (*((knob.name,) if knob is not None else ()), *getattr(cls, "rate_aliases", ()))


def codec_options(cls: type) -> tuple[str, ...] | None:
    """The constructor options of codec class ``cls`` (rate options first), or ``None`` when its
    constructor takes any keyword (then only the constructor itself can check them)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    rates = [n for n in rate_options(cls) if n in names]
    return (*rates, *(n for n in names if n not in rates))


def check_codec_options(cls: type, options: Iterable[str]) -> None:
    """Raise one :class:`ConfigError` (see :func:`check_options`) for a constructor option ``cls`` does not take:
    the one check of codec options, used by :func:`~cilight.codecs.get_codec`, operating points and every CLI."""
    known = codec_options(cls)
    if known is not None:
        check_options(cls.name, options, known)


def codec_name_for_id(container_id: int) -> str | None:
    """The codec a container header's id byte names, or ``None`` for an unknown id."""
    return _BY_CONTAINER_ID.get(container_id)


def container_id_of(name: str) -> int | None:
    """The container id of codec ``name`` (``None``: unknown or writes no bytes)."""
    cls = CODECS.get(name)
    return None if cls is None else cls.container_id


__all__ = ["CODECS", "RateKnob", "check_codec_options", "check_options", "codec_class", "codec_name_for_id", "codec_options",
           "container_id_of", "load_plugins", "nearest", "rate_options", "register_codec"]
