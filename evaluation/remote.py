"""Remote inference, the anchor every feature codec is held to: the input image coded with an image
codec, and the whole model run in the cloud on the decoded image.

The common test conditions of MPEG's Feature Coding for Machines (FCM) compare coded features
with this anchor; here it is a curve family like any other (:func:`~cilight.evaluation.curves.parse_families`),
its points written as operating points prefixed with ``image:``::

    remote=image:jpeg:quality=95,75,50,25,10,5     image:png     image:webp:quality=90,50
    image:jpeg2000:bpe=0.5,1,2                     (bits per element of the image: per pixel per channel)

::

    test image [3,H,W] in [0,1] ─► round(x·255): 8-bit RGB, as a camera delivers it ─► image codec at p
        ─► bytes (the codec's own file, headers included: all counted) ─► decode ─► /255
        ─► the whole model: encoder → each transmission in evaluation, no feature codec → cloud ─► outputs(p)
    metrics(p) against the ORIGINAL batch (labels, disparity, and the original image as the reconstruction target)

The coding itself is the codec's (:meth:`~cilight.codecs.image.FeatureCodec.encode_picture`): every
registered codec that codes pictures is an image codec here (:func:`image_codecs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from cilight.codecs import FeatureCodec, OperatingPoint, get_codec, parse_operating_points
from cilight.codecs.registry import CODECS, nearest
from cilight.errors import ConfigError

IMAGE_PREFIX = "image:"  # an operating point that codes the input image, not the features
FEATURE_OPTIONS = tuple(f.name for f in fields(FeatureCodec))  # options of feature coding: meaningless for a picture


def image_codecs() -> tuple[str, ...]:
    """The registered codecs that code an 8-bit RGB picture (``encode_picture``) into bytes."""
    return tuple(name for name, cls in CODECS.items()
                 if getattr(cls, "writes_bytes", True) and callable(getattr(cls, "encode_picture", None)))


def is_image_point(text: str) -> bool:
    """Whether the text of an operating point (as a :class:`~cilight.evaluation.curves.CurvePoint` names
    it) codes the input image."""
    return text.strip().startswith(IMAGE_PREFIX)


@dataclass(frozen=True)
class ImagePoint:
    """An operating point of an image codec that codes the input image (remote inference).

    ``point`` is the codec and its rate as for features (``jpeg:quality=90``); the knob is the same,
    and a rate per element (``bpe``) counts the image's 3·H·W elements.
    """

    point: OperatingPoint

    def __post_init__(self) -> None:
        if self.point.codec not in image_codecs():
            raise ConfigError(f"operating point {self}: codec {self.point.codec!r} does not code images; "
                              f"image codecs: {', '.join(image_codecs())}")
        feature_only = [k for k, _ in self.point.options if k in FEATURE_OPTIONS]
        if feature_only:
            raise ConfigError(f"operating point {self}: {', '.join(feature_only)} is an option of feature coding "
                              f"({', '.join(FEATURE_OPTIONS)}); the image is coded as 8-bit RGB")

    @property
    def codec(self) -> str:
        return self.point.codec

    def __str__(self) -> str:
        return IMAGE_PREFIX + str(self.point)


def parse_points(texts: str | Iterable[str]) -> tuple[OperatingPoint | ImagePoint, ...]:
    """The operating points of a curve: ``image:…`` ones code the input image (:class:`ImagePoint`),
    the others code the features (:func:`~cilight.codecs.parse_operating_points`); lists expanded in order."""
    points: list[OperatingPoint | ImagePoint] = []
    for text in [texts] if isinstance(texts, str) else list(texts):
        if not is_image_point(text):
            points += parse_operating_points(text)
            continue
        rest = text.strip()[len(IMAGE_PREFIX):]
        name = rest.split(":", 1)[0].strip()
        if name not in image_codecs():
            close = nearest(name, image_codecs())
            hint = f" (did you mean '{IMAGE_PREFIX}{close}'?)" if close else ""
            raise ConfigError(f"operating point {text.strip()!r}: {name!r} is not an image codec; expected one of "
                              f"{', '.join(image_codecs())}{hint}")
        points += [ImagePoint(p) for p in parse_operating_points(rest)]
    return tuple(points)


def camera_pixels(images: Tensor) -> np.ndarray:
    """``uint8 [B, H, W, 3]``: ``images`` ``[B, 3, H, W]`` in [0, 1] as a camera delivers them, round(x·255)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ConfigError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def code_pictures(point: ImagePoint, images: Tensor) -> tuple[Tensor, Tensor]:
    """``(decoded images, bits [B])``: every image of ``images`` ``[B, 3, H, W]`` in [0, 1] as 8-bit RGB
    (:func:`camera_pixels`), coded at ``point`` — real bytes, the codec's file headers included — and
    decoded back to [0, 1] in ``images``' dtype and device. ``bits`` is each image's bytes × 8. A rate the
    codec cannot reach (below its smallest file) is a :class:`~cilight.codecs.CodecError`."""
    codec = get_codec(point.codec, **point.point.codec_options)
    height, width = images.shape[-2:]
    decoded, bits = [], []
    for pixels in camera_pixels(images):
        data = codec.encode_picture(pixels, **point.point.rate_options)
        decoded.append(codec.decode_picture(data, height, width))
        bits.append(8.0 * len(data))
    pictures = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float().div(255)
    return pictures.to(device=images.device, dtype=images.dtype), torch.tensor(bits, dtype=torch.float64)


__all__ = ["FEATURE_OPTIONS", "IMAGE_PREFIX", "ImagePoint", "camera_pixels", "code_pictures", "image_codecs",
           "is_image_point", "parse_points"]
