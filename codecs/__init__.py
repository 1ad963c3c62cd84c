"""Feature codecs: what turns a feature tensor into bytes and back.

Imported as ``cilight.codecs`` (never as ``codecs``: that is the standard-library module).
This package imports nothing from ``cilight.ci_models`` or ``cilight.allocation``.
"""

from cilight.codecs.concealment import METHODS as CONCEALMENT_METHODS
from cilight.codecs.concealment import DatasetMean, channel_means, conceal, loss_mask
from cilight.codecs.container import HEADER_BYTES
from cilight.codecs.errors import CodecError
from cilight.codecs.proxy import Jpeg2000Proxy, ProxyCalibration
from cilight.codecs.image import CODECS, FeatureCodec, Jpeg2000Codec, JpegCodec, PngCodec, codec_of, decode, get_codec, register_codec
from cilight.codecs.quantizers import (
    QUANTIZERS,
    ChannelQuantizer,
    ClipQuantizer,
    MinMaxQuantizer,
    Quantized,
    Quantizer,
    get_quantizer,
    uniform_codes,
    uniform_values,
)
from cilight.codecs.tiling import TILINGS, TileLayout, tile, untile

__all__ = [
    "CONCEALMENT_METHODS",
    "DatasetMean",
    "channel_means",
    "conceal",
    "loss_mask",
    "CODECS",
    "HEADER_BYTES",
    "Jpeg2000Proxy",
    "ProxyCalibration",
    "FeatureCodec",
    "Jpeg2000Codec",
    "JpegCodec",
    "PngCodec",
    "codec_of",
    "decode",
    "get_codec",
    "register_codec",
    "QUANTIZERS",
    "TILINGS",
    "ChannelQuantizer",
    "ClipQuantizer",
    "CodecError",
    "MinMaxQuantizer",
    "Quantized",
    "Quantizer",
    "TileLayout",
    "get_quantizer",
    "tile",
    "uniform_codes",
    "uniform_values",
    "untile",
]
