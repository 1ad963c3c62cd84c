"""Tiling: the channels of a ``C×H×W`` tensor laid out on a grid to make one 2-D image.

Ulhaq, B.A.Sc. thesis, SFU 2020, §2.2.1: each channel becomes one ``H×W`` tile of a
``rows × cols`` grid (``C ≤ rows·cols``), row-major, so a channel stays contiguous for the
codec's spatial transform and the image is close to square, which image codecs prefer.
Choi et al., ICASSP 2020, §3.2 fixes the grid to powers of two:
``cols = 2^⌈½·log₂C⌉``, ``rows = 2^⌊½·log₂C⌋`` (for a C that is not a power of two, the next
power of two). Which grid a stream uses is its quantizer's to say
(:attr:`cilight.codecs.quantizers.Quantizer.tiling`: the BaF ``channel`` quantizer takes the
power-of-two grid, every other quantizer :data:`DEFAULT_TILING`).

Grid cells that no channel fills are padded with the tensor's mean value: a constant tile
costs a codec almost nothing, and the mean avoids a sharp edge at the border of the last
channel. :func:`untile` drops them.

::

    [C, H, W]  ──tile──►  [rows·H, cols·W]      (also [..., C, H, W] → [..., rows·H, cols·W])
               ◄─untile─

:func:`tile` and :func:`untile` take numpy arrays (the codecs' byte path) and torch tensors (the
differentiable JPEG2000 proxy tiles what it models) alike: one definition of the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cilight.codecs.arrays import astype, concat, dtype_name
from cilight.errors import ConfigError

TILINGS = ("square", "power_of_two")
DEFAULT_TILING = "square"  # a quantizer that needs another grid declares it (``Quantizer.tiling``)


@dataclass(frozen=True)
class TileLayout:
    """Where the ``channels`` tiles of size ``height × width`` sit: a ``rows × cols`` grid."""

    channels: int
    height: int
    width: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        for name in ("channels", "height", "width", "rows", "cols"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"tile layout {name}={value!r}: expected a positive integer")
        if self.rows * self.cols < self.channels:
            raise ConfigError(
                f"tile layout {self.rows}×{self.cols} has {self.rows * self.cols} cells, "
                f"fewer than channels={self.channels}"
            )

    @classmethod
    def square(cls, channels: int, height: int, width: int) -> TileLayout:
        """The grid whose image is closest to square: ``cols·W ≈ rows·H``."""
        cols = max(1, min(channels, round(math.sqrt(channels * height / width))))
        return cls(channels, height, width, math.ceil(channels / cols), cols)

    @classmethod
    def power_of_two(cls, channels: int, height: int, width: int) -> TileLayout:
        """BaF §3.2: ``2^⌈½log₂C⌉`` tiles across, ``2^⌊½log₂C⌋`` down."""
        exponent = math.ceil(math.log2(channels)) if channels > 1 else 0
        return cls(channels, height, width, 2 ** (exponent // 2), 2 ** ((exponent + 1) // 2))

    @classmethod
    def named(cls, tiling: str, channels: int, height: int, width: int) -> TileLayout:
        if tiling not in TILINGS:
            raise ConfigError(f"tiling={tiling!r}: expected one of {', '.join(TILINGS)}")
        return getattr(cls, tiling)(channels, height, width)

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.rows * self.height, self.cols * self.width

    @property
    def padding(self) -> int:
        """Grid cells no channel fills."""
        return self.rows * self.cols - self.channels


def tile(features, layout: TileLayout):
    """``[..., C, H, W]`` → ``[..., rows·H, cols·W]`` (numpy or torch); empty cells hold the per-sample mean."""
    *lead, c, h, w = features.shape
    if (c, h, w) != (layout.channels, layout.height, layout.width):
        raise ConfigError(
            f"features of shape {tuple(features.shape)} do not match the tile layout "
            f"[..., {layout.channels}, {layout.height}, {layout.width}]"
        )
    if layout.padding:
        flat = features.reshape(*lead, -1)
        floating = dtype_name(features).startswith(("float", "bfloat"))
        mean = flat.mean(-1) if floating else astype(flat, "float32").mean(-1).round()  # float32: any device has it
        fill = features[..., :1, :, :] * 0 + astype(mean, dtype_name(features)).reshape(*lead, 1, 1, 1)
        features = concat([features, *[fill] * layout.padding], -3)
    grid = features.reshape(*lead, layout.rows, layout.cols, h, w)
    return grid.swapaxes(-3, -2).reshape(*lead, layout.rows * h, layout.cols * w)


def untile(image, layout: TileLayout):
    """Inverse of :func:`tile`: ``[..., rows·H, cols·W]`` → ``[..., C, H, W]`` (numpy or torch)."""
    *lead, height, width = image.shape
    if (height, width) != layout.image_shape:
        raise ConfigError(f"tiled image of shape {tuple(image.shape)} does not match the layout {layout.image_shape}")
    h, w = layout.height, layout.width
    grid = image.reshape(*lead, layout.rows, h, layout.cols, w).swapaxes(-3, -2)
    return grid.reshape(*lead, layout.rows * layout.cols, h, w)[..., : layout.channels, :, :]
