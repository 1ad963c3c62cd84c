"""Feature codecs: what turns a feature tensor into bytes and back.

Imported as ``cilight.codecs`` (never as ``codecs``: that is the standard-library module).
This package imports nothing from ``cilight.ci_models``, ``cilight.allocation`` or ``cilight.evaluation``.

* :mod:`~cilight.codecs.registry` — every codec declared once: name, container id, rate knob;
* :mod:`~cilight.codecs.operating_point` — ``png``, ``jpeg:quality=90``, ``jpeg2000:bpe=0.5``;
* :mod:`~cilight.codecs.image` — PNG, JPEG and JPEG2000 feature codecs (``encode``/``decode``);
* :mod:`~cilight.codecs.coders` — the stream coder of any codec, for rate sweeps;
* :mod:`~cilight.codecs.entropy` — rANS coding with fixed integer CDF tables (learned codecs);
* :mod:`~cilight.codecs.learned` — the learned codec (codec ``learned``), bound to a trained model;
* quantizers, tiling, the container, concealment.
"""

from cilight.codecs.coders import StreamCoder, point_coder, stream_coder
from cilight.codecs.concealment import METHODS as CONCEALMENT_METHODS
from cilight.codecs.concealment import DatasetMean, channel_means, conceal, loss_mask
from cilight.codecs.container import HEADER_BYTES, split_streams
from cilight.codecs.entropy import EntropyTables, range_decode, range_encode
from cilight.codecs.errors import CodecError
from cilight.codecs.image import (
    CodecCoder,
    FeatureCodec,
    Jpeg2000Codec,
    JpegCodec,
    PngCodec,
    codec_of,
    decode,
    get_codec,
)
from cilight.codecs.learned import LatentModel, LearnedCodec
from cilight.codecs.operating_point import OperatingPoint, parse_operating_point, parse_operating_points
from cilight.codecs.quantizers import (
    QUANTIZERS,
    WIRE_QUANTIZERS,
    BoundsQuantizer,
    ChannelQuantizer,
    ClipQuantizer,
    MinMaxQuantizer,
    NeuronQuantizer,
    NeuronStatistics,
    Quantized,
    Quantizer,
    get_quantizer,
    uniform_codes,
    uniform_step,
    uniform_values,
    wire_quantizer,
)
from cilight.codecs.registry import CODECS, RateKnob, codec_class, register_codec
from cilight.codecs.tiling import DEFAULT_TILING, TILINGS, TileLayout, tile, untile

__all__ = [
    "CODECS",
    "CONCEALMENT_METHODS",
    "DEFAULT_TILING",
    "HEADER_BYTES",
    "QUANTIZERS",
    "TILINGS",
    "WIRE_QUANTIZERS",
    "BoundsQuantizer",
    "ChannelQuantizer",
    "ClipQuantizer",
    "CodecCoder",
    "CodecError",
    "DatasetMean",
    "EntropyTables",
    "FeatureCodec",
    "Jpeg2000Codec",
    "JpegCodec",
    "LatentModel",
    "LearnedCodec",
    "MinMaxQuantizer",
    "NeuronQuantizer",
    "NeuronStatistics",
    "OperatingPoint",
    "PngCodec",
    "Quantized",
    "Quantizer",
    "RateKnob",
    "StreamCoder",
    "TileLayout",
    "channel_means",
    "codec_class",
    "codec_of",
    "conceal",
    "decode",
    "get_codec",
    "get_quantizer",
    "loss_mask",
    "parse_operating_point",
    "parse_operating_points",
    "register_codec",
    "split_streams",
    "point_coder",
    "range_decode",
    "range_encode",
    "stream_coder",
    "tile",
    "uniform_codes",
    "uniform_step",
    "uniform_values",
    "untile",
    "wire_quantizer",
]
