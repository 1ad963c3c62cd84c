"""Run exported halves over real bytes: ``EdgeRuntime`` (image → bytes), ``CloudRuntime`` (bytes → outputs).

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2, Fig. 4.3. Only ONNX Runtime, numpy and
:mod:`cilight.codecs` are used — no training code, no PyTorch model — so this module is what
a server (or a phone app's Python prototype) ships.

::

    edge:   image ─► edge.onnx ─► the wire tensors of every stream s ─► its stream coder ─► container_s
            bytes = container_1 ‖ container_2 ‖ …   (one cilight.codecs container per stream, split-point order)
    cloud:  bytes ─► split_streams ─► each stream's coder ─► the cloud half's inputs ─► cloud.onnx ─► outputs

    over a lossy link (thesis §3.2, §4.3; :mod:`cilight.deploy.packets`), streams of quantized codes:
    edge:   codes_s ─► channel groups, each its own container ─► packets of ≤ mss bytes
    cloud:  packets that arrived ─► reassemble ─► conceal what is missing (zero, channel_mean,
            dataset_mean, hybrid) in the feature domain ─► re-quantize on the received range ─► cloud.onnx

What each stream's coder is — quantized codes coded by any registered codec at an operating point,
or range-coded symbols with the tables (and a hyperprior's ``hyper.onnx``) shipped beside the
halves — is read once from the metadata (:func:`cilight.deploy.streams.stream_coders`); the
runtimes loop over the coders. The edge and cloud share nothing but the bytes and the files
beside the halves; tensor names, side-information layout and metadata come from
:mod:`cilight.deploy.wire`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cilight.codecs import CodecError, conceal, split_streams
from cilight.deploy.inputs import check_conceal, check_data, check_drop_corrupt, check_images, check_rates
from cilight.deploy.packets import DEFAULT_MSS, ReceivedStream, Reception, is_packet, reassemble, stream_side_of
from cilight.deploy.streams import stream_coders
from cilight.deploy.wire import (
    DATASET_MEAN,
    IMAGE,
    HalfMetadata,
    is_onnx_runtime_error,
    onnx_error,
    open_half,
    read_dataset_mean,
    stream_range,
)
from cilight.errors import ConfigError

__all__ = ["CloudRuntime", "EdgeRuntime", "HalfMetadata"]


def run_session(session, path: Path, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``session.run``; ONNX Runtime failing on inputs the runtime checked means a damaged file: one :class:`ConfigError`."""
    try:
        return session.run(names, feed)
    except Exception as err:
        if not is_onnx_runtime_error(err):
            raise
        raise ConfigError(f"{path}: ONNX Runtime failed to run it ({onnx_error(err)}); a corrupt or edited file? "
                          "export it again") from None


class EdgeRuntime:
    """Images → bytes, with ``edge.onnx`` and a feature codec.

    Args:
        edge_path: the ``edge.onnx`` written by ``export.py``.
        codec: an operating point (``png``, ``jpeg:quality=90``, ``jpeg2000:bpe=0.5``);
            default (``None``): the one in the metadata.
        **rate: rate options for every stream (e.g. ``target_bits=20000``), over the point's.

    Everything is checked here, before an image is seen: the file (missing, a folder, not ONNX,
    the cloud half), the codec (an empty or unknown name, unknown options with the nearest name)
    and the rate options; images are checked by :func:`~cilight.deploy.inputs.check_images`
    (float in [0, 1], finite, ``[batch, 3, H, W]`` at the exported size) before anything runs.
    """

    def __init__(self, edge_path: Path | str, codec: str | None = None, **rate) -> None:
        self.session, self.meta = open_half(edge_path, "edge")
        self.path = Path(edge_path)
        self._next_frame = 0
        self.coders = stream_coders(self.meta, self.path.parent, codec, rate)

    def features(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``edge.onnx`` on checked images: ``{codes_s, minimum_s, maximum_s}`` for every stream ``s``."""
        images = check_images(images, self.meta.input_shape)
        names = self.meta.stream_names
        return dict(zip(names, run_session(self.session, self.path, names, {IMAGE: images})))

    def _check_rates(self, rates: dict[str, dict] | None) -> dict[str, dict]:
        """Per-stream rates, checked by each stream's codec before anything is encoded."""
        rates = check_rates(rates, self.meta.split_points)
        for split, rate in rates.items():
            self.coders[split].check_rate(rate)
        return rates

    def encode(self, images: np.ndarray, rates: dict[str, dict] | None = None) -> list[bytes]:
        """One byte string per image: the stream containers in split-point order.

        ``rates`` maps a split point to rate options of that stream (e.g.
        ``{"layer3": {"target_bits": 20000}}``), which replace the runtime's for that stream; streams not
        named use the runtime's rate. Rates and images are checked before anything is encoded.
        """
        rates = self._check_rates(rates)
        return [b"".join(coder.encode(tensors, rates.get(split)) for split, coder, tensors in streams)
                for streams in self._streams(images)]

    def packets(self, images: np.ndarray, rates: dict[str, dict] | None = None, mss: int = DEFAULT_MSS,
                channel_means: bool = False, first_frame: int | None = None) -> list[list[bytes]]:
        """The packets of each image (:mod:`cilight.deploy.packets`): every stream cut into channel
        groups that each fit one ``mss``-byte packet and decode alone, so a lost packet loses only
        its channels. ``channel_means`` adds one packet per stream with ``T_μ(c)`` (C × float16)
        for ``channel_mean``/``hybrid`` concealment. Frame ids count up from ``first_frame``
        (default: where the previous call stopped)."""
        rates = self._check_rates(rates)
        frame = self._next_frame if first_frame is None else first_frame
        result = []
        for streams in self._streams(images):
            result.append([packet for index, (split, coder, tensors) in enumerate(streams)
                           for packet in coder.packets(tensors, rates.get(split), frame, index, mss, channel_means)])
            frame += 1
        self._next_frame = frame
        return result

    def _streams(self, images: np.ndarray) -> list[list[tuple[str, object, dict[str, np.ndarray]]]]:
        """Per image, per stream: ``(split point, its coder, its wire tensors by field)``."""
        tensors = self.features(images)
        batch = len(next(iter(tensors.values())))
        return [[(split, coder, {f: tensors[f"{f}_{split}"][b] for f in coder.fields}) for split, coder in self.coders.items()]
                for b in range(batch)]


class CloudRuntime:
    """Bytes → task outputs, with ``cloud.onnx``; the codec is read from each stream's header.

    Args:
        cloud_path: the ``cloud.onnx`` written by ``export.py``.
        dataset_mean: the ``dataset_mean.npz`` for ``dataset_mean``/``hybrid`` concealment
            (default: the one beside ``cloud_path``, read when first needed).
    """

    def __init__(self, cloud_path: Path | str, dataset_mean: Path | str | None = None) -> None:
        self.session, self.meta = open_half(cloud_path, "cloud")
        self.path = Path(cloud_path)
        if dataset_mean is not None and not isinstance(dataset_mean, (str, Path)):
            raise ConfigError(f"dataset_mean={dataset_mean!r}: expected the path of a {DATASET_MEAN} or None")
        self.dataset_mean_path = Path(dataset_mean) if dataset_mean else self.path.parent / DATASET_MEAN
        self._dataset_mean: dict[str, np.ndarray] | None = None
        self.coders = stream_coders(self.meta, self.path.parent)

    def decode(self, frame: bytes) -> dict[str, np.ndarray]:
        """The streams in ``frame`` as ``cloud.onnx`` inputs (batch of one)."""
        pieces = split_streams(frame)
        if len(pieces) != len(self.meta.split_points):
            raise CodecError(f"frame holds {len(pieces)} stream(s), this model expects "
                             f"{len(self.meta.split_points)} ({', '.join(self.meta.split_points)})")
        inputs = {}
        for piece, coder in zip(pieces, self.coders.values()):
            inputs.update(coder.decode(piece))
        return inputs

    def dataset_mean(self) -> dict[str, np.ndarray]:
        """``μ(y, x, c)`` of every stream, from the file written at export."""
        if self._dataset_mean is None:
            self._dataset_mean = read_dataset_mean(self.dataset_mean_path, self.meta)
        return self._dataset_mean

    def receive(self, packets: list[bytes], conceal: str | None = None,
                drop_corrupt: bool = False) -> tuple[Reception, dict[str, np.ndarray]]:
        """Reassemble ``packets`` (any frames, any order) and conceal what was lost.

        Returns the :class:`~cilight.deploy.packets.Reception` (frame ids, which channels arrived,
        duplicates, corrupt packets) and the cloud half's inputs for its frames, batched in frame
        order. ``conceal=None`` is strict: any missing channel is a :class:`CodecError`. A frame of
        which no codes arrived at all is an error with any strategy: there is nothing to infer from.
        """
        conceal = check_conceal(conceal)
        check_drop_corrupt(drop_corrupt)
        packets = check_data(packets)
        for coder in self.coders.values():
            _ = coder.dequantizer  # streams that cannot be concealed channel by channel refuse packets here
        reception = reassemble(packets, self.meta, drop_corrupt)
        if not reception.frames:
            raise CodecError(f"no usable packet among {len(packets)}: nothing arrived to infer from")
        inputs: dict[str, list[np.ndarray]] = {}
        for frame, streams in zip(reception.frames, reception.streams):
            if not any(s.channels.any() for s in streams):
                raise CodecError(f"frame {frame}: no codes arrived for any stream, nothing to infer from")
            for split, received in zip(self.meta.split_points, streams):
                if not received.channels.all() and conceal is None:
                    lost = np.flatnonzero(~received.channels)
                    raise CodecError(f"frame {frame}, stream {split}: {len(lost)} of {len(received.channels)} channels "
                                     f"lost (first {lost[0]}) and conceal=None; pass a concealment strategy")
                codes, side = self._concealed(received, split, conceal)
                minimum, maximum = stream_range(side, self.meta.quantizer)
                for name, value in ((f"codes_{split}", codes[None]), (f"minimum_{split}", minimum),
                                    (f"maximum_{split}", maximum)):
                    inputs.setdefault(name, []).append(value)
        return reception, {k: np.concatenate(v) for k, v in inputs.items()}

    def _concealed(self, received: ReceivedStream, split: str, method: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Codes and side information of one stream with its lost channels filled in (thesis §3.2)."""
        quantizer = self.meta.quantizer
        if received.channels.all():
            return received.codes, stream_side_of(received, quantizer, received.features, self.meta.bits)
        features = received.features
        mask = np.broadcast_to(received.channels[:, None, None], features.shape)
        mean = self.dataset_mean()[split] if method in ("dataset_mean", "hybrid") else None
        means = received.channel_means
        if method in ("channel_mean", "hybrid") and means is None:
            if mean is None:  # channel_mean without the edge's means packet: the dataset's channel means
                mean = self.dataset_mean()[split]
            means = mean.mean(axis=(1, 2))  # documented fallback: hybrid becomes dataset_mean
        filled = conceal(features, mask, method, dataset_mean=mean,
                         channel_mean=None if means is None else np.asarray(means, np.float32))
        side = stream_side_of(received, quantizer, filled, self.meta.bits)
        codes = self.coders[split].dequantizer.codes_with(filled, side)
        return np.where(received.channels[:, None, None], received.codes, codes.astype(received.codes.dtype)), side

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``cloud.onnx`` on batched inputs: one output per task, named as in the metadata."""
        names = list(self.meta.outputs)
        return dict(zip(names, run_session(self.session, self.path, names, inputs)))

    def infer(self, data: list[bytes] | bytes, conceal: str | None = None, drop_corrupt: bool = False) -> dict[str, np.ndarray]:
        """Task outputs (one array per task, named as in the metadata), batched.

        ``data``: one frame or a list of frames (whole containers, as :meth:`EdgeRuntime.encode`
        writes them; strict: any damage is a :class:`CodecError`), or a list of packets of any
        frames (:meth:`EdgeRuntime.packets`, flattened; outputs in frame-id order), of which lost
        ones are filled in with ``conceal`` (``zero``, ``channel_mean``, ``dataset_mean``, ``hybrid``;
        ``None``: strict). :meth:`receive` also says which frames and channels arrived. ``conceal`` is
        checked for whole frames too (where nothing can be lost, so it is not used).
        """
        items = check_data(data)
        check_conceal(conceal)
        check_drop_corrupt(drop_corrupt)
        if any(is_packet(x) for x in items):
            return self.run(self.receive(items, conceal, drop_corrupt)[1])
        decoded = [self.decode(f) for f in items]
        return self.run({k: np.concatenate([d[k] for d in decoded]) for k in decoded[0]})
