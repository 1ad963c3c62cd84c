"""Transmissions: what happens to one stream between the split point and the cloud half.

A split model computes a tensor ``F`` at each split point and the cloud half continues from
what it receives. Everything in between — how ``F`` is quantized or entropy coded, what it costs
in training, what the edge computes for the wire, what the cloud rebuilds — is one
:class:`Transmission`, one module per stream, behind one interface (as CompressAI's latent
codecs are behind ``forward`` / ``compress`` / ``decompress``). The model, the exporter, the
runtimes, the curves and the callbacks ask the transmission; none of them asks which kind it is.

::

    training    F ─► transmission(F) ─► Transmitted(features F̂ the cloud sees, rate term, bits)
    deployment  F ─► edge(F) ─► wire tensors ─► bytes (codecs) ─► wire tensors ─► cloud(...) ─► F̂
    evaluation  F ─► transmitted(F) ─► a feature codec at an operating point ─► received(·) ─► F̂
                     (or the transmission's own codec, for a learned bottleneck)

Three implementations:

* :class:`QLayerTransmission` — the Q-layer (Alvar & Bajić, "Multi-task learning with compressible
  features for collaborative intelligence", IEEE ICIP 2019, §2.1: uniform noise in training,
  min–max rounding at inference) with a rate term by name (``dpcm_dct``: L_r of eq 1–5;
  ``proxy_bits``: the differentiable JPEG2000 proxy's bits; ``none``) and, optionally, the proxy's
  distortion in the loop (``codec_noise``); :mod:`cilight.ci_models.rate` has the rate terms;
* :class:`BottleneckTransmission` — a learned bottleneck (Ballé, Minnen, Singh, Hwang &
  Johnston, "Variational image compression with a scale hyperprior", ICLR 2018): ``g_a``, a
  factorized or hyperprior entropy model, ``g_s``; rate ``λ · Σ −log₂ p`` bits per image; the
  range coder with integer CDF tables fixed at every checkpoint;
* :class:`~cilight.ci_models.baf.BaFTransmission` — Back-and-Forth prediction (Choi, Cohen &
  Bajić, "Back-and-forth prediction for deep tensor compression", IEEE ICASSP 2020): C selected
  channels, each quantized over its own fp16 range, the rest predicted in the cloud.

A transmission of one's own subclasses :class:`Transmission` (or :class:`QuantizedTransmission`,
which supplies the wire of a min–max quantizer) and is named by class path in the config::

    model:
      init_args:
        transmission:
          class_path: my_package.TopVariance     # or QLayerTransmission, BottleneckTransmission
          init_args: {channels_kept: 64, bits: 4}

It is built once per stream with that stream's :class:`~cilight.ci_models.StreamLayout` as its
first argument; its other arguments are recorded (:meth:`Transmission.config`), so a checkpoint
rebuilds it with nothing else.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from cilight.ci_models.backbone import StreamLayout
from cilight.ci_models.bottleneck import BOTTLENECKS, LearnedBottleneck, make_bottleneck
from cilight.ci_models.quantization import QuantizationLayer, QuantizedStream
from cilight.ci_models.rate import (
    PROXY_RATE_LOSSES,
    RATE_TERMS,
    ProxyOperatingRange,
    StreamProxy,
    check_rate_options,
)
from cilight.codecs import EntropyTables, LearnedCodec
from cilight.deploy.wire import StreamWire
from cilight.errors import ConfigError

RATE_WEIGHTINGS = ("learned", "fixed")  # the rate term with its own eq 6 weight, or λ · rate term beside eq 6
RATE_LAMBDA = 1e-4  # default trade-off of a learned bottleneck, per bit per image
AUX_LR = 1e-3  # the entropy bottlenecks' quantiles (CompressAI's examples use the same)
ENTROPY_LR = 1e-2  # the factorized priors' densities: see BottleneckTransmission


@dataclass
class Transmitted:
    """One stream after its transmission in a forward pass.

    ``features``: what the cloud half continues from ``[B, C, h, w]``; ``rate``: this stream's rate
    term for the loss (a scalar, already weighted; ``None``: no term); ``bits``: estimated bits of
    each sample ``[B]`` where the transmission knows them (a learned bottleneck's likelihoods).
    """

    features: Tensor
    rate: Tensor | None = None
    bits: Tensor | None = None


class Transmission(nn.Module, ABC):
    """One stream between the split point and the cloud half (see the module docstring).

    Subclasses take the stream's :class:`StreamLayout` first, then their options, which must be
    plain values (numbers, strings, lists): they are recorded for :meth:`config` automatically.

    Attributes:
        rate_in_eq6: whether the rate term is one more regression-type term of eq 6 (Alvar &
            Bajić, ICIP 2019) with its own learned weight; otherwise it is added to eq 6 as it is.
        wire_fields: names of the tensors :meth:`edge` returns, in order (``codes``, ``minimum``,
            ``maximum``; ``symbols_z``, ``symbols_y``); the wire names them ``<field>_<split>``.
        cloud_fields: the ones :meth:`cloud` takes (default: all of them).
    """

    rate_in_eq6: bool = False
    wire_fields: ClassVar[tuple[str, ...]]
    cloud_fields: ClassVar[tuple[str, ...] | None] = None
    options: dict[str, Any]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_options(cls.__init__)

    def __init__(self, layout: StreamLayout) -> None:
        super().__init__()
        if not isinstance(layout, StreamLayout):
            raise ConfigError(f"{type(self).__name__} is built per stream with its StreamLayout first, got "
                              f"{type(layout).__name__}")
        self.layout = layout
        self.options = getattr(self, "options", {})

    # --------------------------------------------------------------------- training
    @abstractmethod
    def forward(self, features: Tensor, rate: bool = True) -> Transmitted:
        """The stream as the cloud sees it (noise or proxy in training, rounding in evaluation) and,
        with ``rate``, its rate term."""

    def parameter_groups(self) -> list[dict]:
        """Adam parameter groups of this transmission's own (other learning rates); every other
        parameter trains with the network."""
        return []

    def aux_loss(self) -> Tensor | None:
        """A loss that trains only parameters nothing else trains (CompressAI's quantiles), added to the
        total for the one backward; ``None``: none."""
        return None

    # --------------------------------------------------------------------- deployment
    @abstractmethod
    def edge(self, features: Tensor) -> tuple[Tensor, ...]:
        """Edge side: the wire tensors (:attr:`wire_fields`) of ``features`` ``[B, C, h, w]``."""

    @abstractmethod
    def cloud(self, *tensors: Tensor) -> Tensor:
        """Cloud side: the features to continue from, from the :attr:`cloud_fields` tensors."""

    @abstractmethod
    def wire(self, height: int, width: int) -> StreamWire:
        """How this stream crosses the network for a split tensor of ``height × width``."""

    def coding_graphs(self, height: int, width: int) -> dict[str, tuple[nn.Module, tuple[str, ...], tuple[str, ...]]]:
        """Graphs both sides run around the entropy coder for a split tensor of ``height × width``, by
        file stem: ``(module, input fields, output fields)`` — a hyperprior's ``hyper`` (``z`` symbols
        → ``y`` table rows)."""
        return {}

    @property
    def receiving_fields(self) -> tuple[str, ...]:
        return self.cloud_fields if self.cloud_fields is not None else self.wire_fields

    # --------------------------------------------------------------------- evaluation
    def transmitted(self, features: Tensor) -> Tensor:
        """The float tensor an image codec codes for this stream (default: ``features``)."""
        return features

    def received(self, decoded: Tensor) -> Tensor:
        """The features the cloud continues from, given the decoded :meth:`transmitted` tensor."""
        return decoded

    def own_codec(self) -> Any | None:
        """A transmission that writes its own bytes (a learned bottleneck) returns its feature codec
        (``encode(features) -> bytes``, ``decode(bytes) -> features``); ``None``: any registered codec
        codes :meth:`transmitted`."""
        return None

    def own_codec_name(self) -> str | None:
        """The registered name of :meth:`own_codec` (the operating point that measures it), without
        needing its tables; ``None``: none."""
        return None

    # --------------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Tensor]:
        """Tensors to store in a checkpoint beside the weights (a learned bottleneck's tables)."""
        return {}

    def load_checkpoint_state(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`checkpoint_state` stored."""

    def config(self) -> dict:
        """``{"class_path", "init_args"}``: how to build this transmission again (hyperparameters)."""
        return type(self).spec(**self.options)

    @classmethod
    def spec(cls, **options) -> dict:
        """``{"class_path", "init_args"}`` of this class with ``options``: what ``MultiTaskCI(transmission=…)``
        takes, e.g. ``BottleneckTransmission.spec(prior="hyperprior")``."""
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(options)}


def _recording_options(init: Callable) -> Callable:
    """Wrap a transmission's ``__init__`` so the most derived class records its arguments."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs) -> None:
        outermost = not hasattr(self, "_recording")
        if outermost:
            object.__setattr__(self, "_recording", True)
            bound = inspect.signature(init).bind(self, *args, **kwargs)
            bound.apply_defaults()
            names = list(bound.arguments)[2:]  # after self and the layout
            object.__setattr__(self, "options", {k: _plain(bound.arguments[k]) for k in names})
        try:
            init(self, *args, **kwargs)
        finally:
            if outermost:
                object.__delattr__(self, "_recording")

    return wrapper


def _plain(value: Any) -> Any:
    return list(map(_plain, value)) if isinstance(value, tuple) else value


# ------------------------------------------------------------------------- the registry
TRANSMISSIONS: dict[str, type[Transmission]] = {}


def register_transmission(cls: type[Transmission]) -> type[Transmission]:
    """Class decorator: a transmission configs may name by its class name alone."""
    TRANSMISSIONS[cls.__name__] = cls
    return cls


TransmissionSpec = Callable[[StreamLayout], Transmission] | dict | str | None


def transmission_class(name: str) -> type[Transmission]:
    """The class ``name`` names: a registered class name or an import path ``module.Class``."""
    if name in TRANSMISSIONS:
        return TRANSMISSIONS[name]
    module, _, attr = str(name).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr) if module else None
    except (ImportError, AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Transmission)):
        raise ConfigError(f"transmission {name!r}: expected one of {', '.join(TRANSMISSIONS)} or the import path of a "
                          "cilight.ci_models.Transmission subclass")
    return cls


def build_transmission(spec: TransmissionSpec, layout: StreamLayout) -> Transmission:
    """The transmission of one stream: ``spec`` is ``None`` (the Q-layer, default options), a class
    name or path, ``{"class_path", "init_args"}`` (a config or a checkpoint's hyperparameters) or
    a callable taking the layout (what LightningCLI hands over)."""
    if spec is None:
        return QLayerTransmission(layout)
    if isinstance(spec, str):
        return transmission_class(spec)(layout)
    if callable(getattr(spec, "as_dict", None)):  # a jsonargparse Namespace (Lightning re-instantiating a config)
        spec = spec.as_dict()
        spec["init_args"] = {k: v for k, v in (spec.get("init_args") or {}).items() if k != "layout"}
    if isinstance(spec, dict):
        unknown = set(spec) - {"class_path", "init_args"}
        if "class_path" not in spec or unknown:
            raise ConfigError(f"transmission {spec!r}: expected {{class_path: …, init_args: {{…}}}}")
        args = dict(spec.get("init_args") or {})
        cls = transmission_class(spec["class_path"])
        try:
            inspect.signature(cls).bind(layout, **args)
        except TypeError as err:
            raise ConfigError(f"transmission {cls.__name__} with {args}: {err}") from None
        return cls(layout, **args)
    if callable(spec):
        built = spec(layout)
        if not isinstance(built, Transmission):
            raise ConfigError(f"transmission factory {spec!r} built a {type(built).__name__}, expected a Transmission")
        return built
    raise ConfigError(f"transmission={spec!r}: expected a class name, {{class_path, init_args}} or None")


# ------------------------------------------------------------------------- quantized wires
class QuantizedTransmission(Transmission):
    """Base of the transmissions whose wire is n-bit min–max codes with one range per sample
    (``codes`` uint8/int32, ``minimum``, ``maximum`` ``[B]``), which every registered image codec
    can code: subclasses say what is sent (:meth:`transmitted`), what the cloud makes of it
    (:meth:`received`) and how training emulates it (:meth:`forward`)."""

    wire_fields = ("codes", "minimum", "maximum")

    def __init__(self, layout: StreamLayout, bits: int = 8) -> None:
        super().__init__(layout)
        self.quantizer = QuantizationLayer(bits)

    @property
    def bits(self) -> int:
        return self.quantizer.bits

    def transmitted_channels(self) -> int:
        """Channels of :meth:`transmitted` (default: all of the split's)."""
        return self.layout.channels

    def edge(self, features: Tensor) -> QuantizedStream:
        return self.quantizer.encode(self.transmitted(features))  # a named tuple: codes, minimum, maximum

    def cloud(self, codes: Tensor, minimum: Tensor, maximum: Tensor) -> Tensor:
        return self.received(self.quantizer.decode(QuantizedStream(codes, minimum, maximum)))

    def wire(self, height: int, width: int) -> StreamWire:
        return StreamWire(shape=(self.transmitted_channels(), height, width), quantizer="minmax", bits=self.bits)


@register_transmission
class QLayerTransmission(QuantizedTransmission):
    """The Q-layer with a rate term (Alvar & Bajić, IEEE ICIP 2019, §2.1–2.3, eq 1–6).

    Args:
        layout: the stream.
        bits: bits per element of the Q-layer.
        rate_loss: the rate term: ``dpcm_dct`` (L_r, eq 1–5; default), ``proxy_bits`` (the JPEG2000
            proxy's predicted bits per element) or ``none`` (the paper's benchmark model).
        compressibility_weight: multiplier of the rate term; ``0`` drops it (as ``rate_loss="none"``).
            With learned weights, any value > 0 only changes the start of training, since ``w_r`` adapts.
        rate_weighting: ``learned`` (default): the rate term is one more regression-type term of eq 6
            with its own learned weight; ``fixed``: eq 6 over the tasks plus ``compressibility_weight ·``
            the rate term (a fixed λ).
        rate_features: ``normalized`` (default): L_r on ``(F − min)/(max − min)``, the stream as the
            min–max quantizer sees it — min–max quantization makes the codes, and so the rate,
            invariant to the scale of ``F``, while L_r on raw features can be driven down by shrinking
            every feature without changing one code; ``raw``: eq 5 as printed (``dpcm_dct`` only).
        rate_bpe_range: ``[low, high]`` bits per element the proxy's step is drawn from, per batch
            (log-uniform; evaluation uses the geometric middle).
        rate_step: a fixed dead-zone step for the proxy instead (``None``: draw from the range).
        codec_noise: ``none`` (default) or ``proxy``: in training, replace each sample's stream after
            the Q-layer, with probability ``codec_noise_probability``, by the proxy's reconstruction.
        codec_noise_probability: that probability, in (0, 1].
    """

    def __init__(self, layout: StreamLayout, bits: int = 8, rate_loss: str = "dpcm_dct",
                 compressibility_weight: float = 1.0, rate_weighting: str = "learned",
                 rate_features: str = "normalized", rate_bpe_range: list[float] = (0.1, 2.0),
                 rate_step: float | None = None, codec_noise: str = "none", codec_noise_probability: float = 0.5) -> None:
        super().__init__(layout, bits)
        if isinstance(compressibility_weight, bool) or not isinstance(compressibility_weight, (int, float)) \
                or not compressibility_weight >= 0:
            raise ConfigError(f"compressibility_weight={compressibility_weight!r}: expected a number ≥ 0")
        if rate_weighting not in RATE_WEIGHTINGS:
            raise ConfigError(f"rate_weighting={rate_weighting!r}: expected one of {', '.join(RATE_WEIGHTINGS)}")
        check_rate_options(rate_loss, rate_features, codec_noise, codec_noise_probability)
        operating = ProxyOperatingRange(rate_bpe_range, rate_step)
        self.rate_term = RATE_TERMS.get(rate_loss) if compressibility_weight > 0 else None
        self.weight, self.rate_features = float(compressibility_weight), rate_features
        self.codec_noise, self.codec_noise_probability = codec_noise == "proxy", float(codec_noise_probability)
        needs_proxy = self.codec_noise or (self.rate_term is not None and rate_loss in PROXY_RATE_LOSSES)
        self.proxy = StreamProxy(operating) if needs_proxy else None
        self.rate_in_eq6 = self.rate_term is not None and rate_weighting == "learned"

    def forward(self, features: Tensor, rate: bool = True) -> Transmitted:
        stream = self.quantizer(features)
        codec_noise = self.training and self.codec_noise
        coding = None
        if self.proxy is not None and (codec_noise or (rate and self.rate_term is not None)):
            coding = self.proxy(features)
        if codec_noise:
            stream = self._codec_noise(stream, coding)
        term = None
        if rate and self.rate_term is not None:
            term = self.weight * self.rate_term(features, coding, self.rate_features)
        return Transmitted(stream, term)

    def _codec_noise(self, stream: Tensor, coding) -> Tensor:
        """Each sample's Q-layer output replaced, with probability p, by the proxy's reconstruction."""
        chosen = torch.rand(stream.shape[0], device=stream.device) < self.codec_noise_probability
        if not bool(chosen.any()):
            return stream
        return torch.where(chosen.view(-1, 1, 1, 1), coding.reconstruction().to(stream.dtype), stream)


# ------------------------------------------------------------------------- learned bottleneck
@register_transmission
class BottleneckTransmission(Transmission):
    """A learned bottleneck per stream (Ballé et al., ICLR 2018; :mod:`cilight.ci_models.bottleneck`).

    ::

        F ─g_a─► y ─Q─► ŷ (+ ẑ) ─► range coder (tables fixed at every checkpoint) │ ─► g_s ─► F̂
        rate term = rate_lambda · Σ −log₂ p(ŷ, ẑ), bits per image (the batch mean), beside eq 6

    The entropy bottlenecks' auxiliary loss trains their quantiles in the same backward (the two
    parameter sets are disjoint: the aux loss detaches the density network, and noise quantization
    never reads the quantiles), in their own Adam group at :data:`AUX_LR`, without weight decay.

    The factorized priors' densities learn at ``entropy_lr`` (default 10× the network's rate).
    CompressAI initialises them for latents of scale ~10 (``init_scale``); here ``g_a``'s latents
    start near 0.3, so the initial density is far too wide and the rate is set by how fast the
    density sharpens, not by λ: at the network's learning rate, 2-epoch runs of the default model
    coded 9.73, 9.66, 9.63 and 9.60 kbit per image for λ = 1e-5, 1e-4, 1e-3 and 1e-2; with the
    densities at 10× the same runs coded 3.40, 1.33, 0.74 and 0.70 kbit per image.

    Args:
        layout: the stream.
        prior: ``factorized`` or ``hyperprior``.
        channels: latent channels (``g_a`` reduces the stream to them).
        rate_lambda: λ: the loss adds ``λ ·`` bits per image.
        entropy_lr: learning rate of the factorized priors' densities.
    """

    wire_fields = ()  # set per instance from the prior's coding order
    cloud_fields = ("symbols_y",)

    def __init__(self, layout: StreamLayout, prior: str = "factorized", channels: int = 64,
                 rate_lambda: float = RATE_LAMBDA, entropy_lr: float = ENTROPY_LR) -> None:
        super().__init__(layout)
        for what, value, meaning in (("rate_lambda", rate_lambda, "the loss adds λ · bits per image"),
                                     ("entropy_lr", entropy_lr, "the densities' learning rate")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConfigError(f"{what}={value!r}: expected a positive number ({meaning})")
        if prior not in BOTTLENECKS:
            raise ConfigError(f"prior={prior!r}: expected one of {', '.join(BOTTLENECKS)}")
        self.bottleneck: LearnedBottleneck = make_bottleneck(prior, layout.channels, channels)
        self.rate_lambda, self.entropy_lr = float(rate_lambda), float(entropy_lr)
        self.wire_fields = tuple(f"symbols_{latent}" for latent in self.bottleneck.coding_order)
        self.tables: dict[str, EntropyTables] | None = None

    def forward(self, features: Tensor, rate: bool = True) -> Transmitted:
        coded = self.bottleneck(features)
        bits = coded.bits()
        return Transmitted(coded.features, self.rate_lambda * bits.mean() if rate else None, bits)

    def parameter_groups(self) -> list[dict]:
        return [{"params": self.bottleneck.density_parameters(), "lr": self.entropy_lr},
                {"params": self.bottleneck.aux_parameters(), "lr": AUX_LR, "weight_decay": 0.0}]

    def aux_loss(self) -> Tensor:
        return self.bottleneck.aux_loss()

    # --------------------------------------------------------------------- tables
    def fix_tables(self) -> dict[str, EntropyTables]:
        """The integer CDF tables of the current weights (kept, and written into every checkpoint);
        the codec and the export read only these."""
        self.tables = self.bottleneck.fix_tables()
        return self.tables

    def require_tables(self) -> dict[str, EntropyTables]:
        if self.tables is None:
            raise ConfigError("this learned bottleneck has no entropy tables: load the model from a checkpoint written "
                              "by train.py, or call fix_tables() once it is trained")
        return self.tables

    def checkpoint_state(self) -> dict[str, Tensor]:
        return {f"{latent}.{key}": torch.from_numpy(array.copy()) for latent, tables in self.fix_tables().items()
                for key, array in tables.arrays().items()}

    def load_checkpoint_state(self, state: dict[str, Tensor]) -> None:
        if state:
            arrays = {k: v.numpy() for k, v in state.items()}
            self.tables = {latent: EntropyTables.from_arrays(arrays, f"{latent}.") for latent in self.bottleneck.coding_order}

    # --------------------------------------------------------------------- deployment
    def edge(self, features: Tensor) -> tuple[Tensor, ...]:
        symbols = self.bottleneck.symbols(features, self.require_tables())
        return tuple(symbols[latent] for latent in self.bottleneck.coding_order)

    def cloud(self, symbols_y: Tensor) -> Tensor:
        return self.bottleneck.reconstruct({"y": symbols_y}, self.require_tables())

    def wire(self, height: int, width: int) -> StreamWire:
        return StreamWire(shape=(self.layout.channels, height, width), quantizer="none", bits=0, codec=self.own_codec_name(),
                          latents=self.bottleneck.latent_shapes(height, width),
                          hyper_rows=tuple(self.bottleneck.hyper_rows), tables=self.require_tables())

    def coding_graphs(self, height: int, width: int) -> dict[str, tuple[nn.Module, tuple[str, ...], tuple[str, ...]]]:
        if not self.bottleneck.hyper_rows:
            return {}
        rows = tuple(f"rows_{r}" for r in self.bottleneck.hyper_rows)
        return {"hyper": (_HyperRows(self, height, width), ("symbols_z",), rows)}

    def own_codec(self) -> LearnedCodec:
        return LearnedCodec(BottleneckLatents(self.bottleneck.eval()), self.require_tables())

    def own_codec_name(self) -> str:
        return LearnedCodec.name


class BottleneckLatents:
    """A trained bottleneck as the learned codec's :class:`~cilight.codecs.LatentModel`: the codec works on
    numpy arrays (the edge install has no torch), the bottleneck on tensors on its own device; this runs
    it without gradients and copies its results back to numpy."""

    def __init__(self, bottleneck: LearnedBottleneck) -> None:
        self.bottleneck = bottleneck
        self.coding_order = tuple(bottleneck.coding_order)

    @property
    def channels(self) -> int:
        return self.bottleneck.channels

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        return self.bottleneck.latent_shapes(height, width)

    def _tensors(self, arrays: dict[str, np.ndarray]) -> dict[str, Tensor]:
        device = next(self.bottleneck.parameters()).device
        return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in arrays.items()}

    @torch.no_grad()
    def symbols(self, features: np.ndarray, tables: dict[str, EntropyTables]) -> dict[str, np.ndarray]:
        symbols = self.bottleneck.symbols(self._tensors({"f": features})["f"], tables)
        return {k: v.cpu().numpy() for k, v in symbols.items()}

    @torch.no_grad()
    def rows(self, name: str, decoded: dict[str, np.ndarray], shape: tuple[int, ...],
             tables: dict[str, EntropyTables]) -> np.ndarray:
        return np.asarray(self.bottleneck.rows(name, self._tensors(decoded), shape, tables).cpu())

    @torch.no_grad()
    def reconstruct(self, symbols: dict[str, np.ndarray], tables: dict[str, EntropyTables]) -> np.ndarray:
        return self.bottleneck.reconstruct(self._tensors(symbols), tables).float().cpu().numpy()


class _HyperRows(nn.Module):
    """A hyperprior's ``z`` symbols → the table rows of its ``y`` symbols (both sides run it)."""

    def __init__(self, transmission: BottleneckTransmission, height: int, width: int) -> None:
        super().__init__()
        self.transmission = transmission
        self.shape = transmission.bottleneck.latent_shapes(height, width)["y"]

    def forward(self, symbols_z: Tensor) -> Tensor:
        t = self.transmission
        return t.bottleneck.y_rows(symbols_z, t.require_tables(), torch.Size((symbols_z.shape[0], *self.shape)))


__all__ = [
    "AUX_LR",
    "ENTROPY_LR",
    "RATE_LAMBDA",
    "RATE_WEIGHTINGS",
    "TRANSMISSIONS",
    "BottleneckTransmission",
    "QLayerTransmission",
    "QuantizedTransmission",
    "Transmission",
    "TransmissionSpec",
    "Transmitted",
    "build_transmission",
    "register_transmission",
    "transmission_class",
]
