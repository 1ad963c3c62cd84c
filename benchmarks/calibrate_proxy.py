"""Calibrate the rate model of the differentiable JPEG2000 proxy against OpenJPEG.

For every calibration tensor and target rate (0.1 … 2 bits per element) this codes the
tensor with the real pipeline (8-bit min–max → square tiling → OpenJPEG at
``ratio = pixels / target bytes`` → decode → untile → dequantize) and records the codestream
size and the feature-domain MSE. The proxy has no rate knob, only a step: the step that
corresponds to a codestream is the one at which the proxy's feature-domain MSE equals the
real one (found on a log grid of steps, interpolated). At that step the proxy's rate features
(:data:`cilight.ci_models.proxy.RATE_FEATURES`) are computed, and the weights of the rate model
are fitted by least squares on the *relative* error of ``bits = weights · features``.

Data (see :func:`datasets`): synthetic smooth random fields (Gaussian spectra, several
correlation lengths), separable AR(1) fields, and real activations of a briefly trained
``MultiTaskCI`` (ResNet-18 stages layer1–layer4 of 256×512 SyntheticStreets images, i.e.
64×64×128, 128×32×64, 256×16×32, 512×8×16). The split into calibration and held-out tensors
is fixed here and shared with ``benchmarks/proxy_accuracy.py``: held-out tensors use other
seeds and images, and two kinds (AR fields, layer3 activations) are never calibrated on.

    python -m benchmarks.calibrate_proxy [--cache DIR] [--threads N] [--refit FILE]

Writes ``ci_models/proxy_calibration.json`` (the constants the proxy loads by default) and
``benchmarks/results/proxy_calibration_data.json`` (every point: tensor, rate, real bits and
MSE, matched step, rate features), from which ``--refit`` redoes the fit without OpenJPEG.
The features depend on the code-block size (:data:`cilight.codecs.jpeg2000.CODEBLOCK`): after
changing it, run this script again. A few minutes on 2 CPU cores (the activations are cached).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import RESULTS, write_result
from cilight.ci_models.proxy import CALIBRATION_FILE, RATE_FEATURES, Jpeg2000Proxy, ProxyCalibration
from cilight.codecs.jpeg2000 import CODEBLOCK, decode_codestream, encode_codestream
from cilight.codecs.quantizers import MinMaxQuantizer
from cilight.codecs.tiling import TileLayout, tile, untile

SHAPES = ((64, 64, 128), (128, 32, 64), (256, 16, 32), (512, 8, 16))  # ResNet layer1–4 at 256×512
STAGES = ("layer1", "layer2", "layer3", "layer4")
CALIBRATION_RATES = (0.1, 0.2, 0.4, 0.7, 1.0, 1.4, 2.0)  # bits per element
HELD_OUT_RATES = (0.12, 0.25, 0.5, 0.85, 1.2, 1.7)
STEP_GRID = np.exp(np.linspace(math.log(0.25), math.log(1024.0), 48))
SATURATION = 0.9  # a codestream smaller than 90 % of its target means OpenJPEG ran out of passes


# --------------------------------------------------------------------------- tensors
def smooth_field(shape: tuple[int, int, int], correlation: float, seed: int) -> torch.Tensor:
    """ReLU of a Gaussian-spectrum random field (correlation length in pixels), random
    per-channel gain and offset: activation-like, smooth at large ``correlation``."""
    c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c, h, w, generator=g, dtype=torch.float64)
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(w, dtype=torch.float64).view(1, -1)
    spectrum = torch.exp(-2 * (math.pi * correlation) ** 2 * (fx**2 + fy**2))
    x = torch.fft.ifft2(torch.fft.fft2(x) * spectrum).real
    x = x / x.std() * (2 * torch.rand(c, 1, 1, generator=g, dtype=torch.float64))
    return torch.relu(x + 0.5 * torch.randn(c, 1, 1, generator=g, dtype=torch.float64)).float()


def ar_field(shape: tuple[int, int, int], rho: float, seed: int) -> torch.Tensor:
    """ReLU of a separable 2-D AR(1) process ``x[i,j] = ρ·x[i−1,j] + ρ·x[i,j−1] − ρ²·x[i−1,j−1] + e``."""
    from scipy.signal import lfilter

    c, h, w = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w))
    x = lfilter([1.0], [1.0, -rho], lfilter([1.0], [1.0, -rho], x, axis=1), axis=2)
    x = x / x.std() * rng.uniform(0.2, 2.0, (c, 1, 1)) + rng.normal(0, 0.5, (c, 1, 1))
    return torch.from_numpy(np.maximum(x, 0)).float()


def real_activations(cache: Path, images: int = 8) -> dict[str, torch.Tensor]:
    """Stage outputs (layer1–4) of a ``MultiTaskCI`` trained briefly on SyntheticStreets, for
    ``images`` test scenes at 256×512. Trained once and cached in ``cache``."""
    path = cache / f"activations-{images}.pt"
    if path.exists():
        return torch.load(path)
    import lightning.pytorch as pl

    from cilight.ci_models import MultiTaskCI
    from cilight.datamodules import SyntheticStreets
    from cilight.datamodules.synthetic import generate_sample

    print("training a MultiTaskCI (split after layer2 and layer4, 1 epoch of 256 scenes at 64×128) …", flush=True)
    start = time.perf_counter()
    pl.seed_everything(0, verbose=False)
    data = SyntheticStreets(height=64, width=128, num_train=256, num_val=16, num_test=16, batch_size=16)
    model = MultiTaskCI(split_points=["layer2", "layer4"])
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, default_root_dir=str(cache / "run"),
    )
    trainer.fit(model, data)
    print(f"  trained in {time.perf_counter() - start:.0f} s; extracting activations at 256×512", flush=True)
    model.eval()
    encoder = model.encoder
    stages: dict[str, list[torch.Tensor]] = {name: [] for name in STAGES}
    with torch.no_grad():
        for i in range(images):
            sample = generate_sample(5, "test", i, 256, 512)
            x = torch.from_numpy(sample["image"]).float().div(255)[None]
            x = encoder.stem((x - encoder.mean) / encoder.std)
            for name in STAGES:  # every stage up to layer4, transmitted or not
                x = encoder.stages[name](x)
                stages[name].append(x[0].clone())
    out = {name: torch.stack(v) for name, v in stages.items()}
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


@dataclass(frozen=True)
class Item:
    """One tensor of the study: its name, kind and the tensor."""

    name: str
    kind: str
    tensor: torch.Tensor


def datasets(cache: Path) -> dict[str, list[Item]]:
    """The calibration and held-out tensors (disjoint; two kinds only in held-out)."""
    acts = real_activations(cache)
    calibration, held_out = [], []
    for shape in SHAPES:
        for i, corr in enumerate((0.5, 1.0, 2.0, 4.0)):
            calibration.append(Item(f"field{shape[0]}-c{corr}", "smooth field", smooth_field(shape, corr, 100 + i + shape[0])))
        for i, corr in enumerate((0.7, 1.5, 3.0)):
            held_out.append(Item(f"field{shape[0]}-c{corr}", "smooth field", smooth_field(shape, corr, 900 + i + shape[0])))
        for i, rho in enumerate((0.6, 0.9)):
            held_out.append(Item(f"ar{shape[0]}-r{rho}", "AR(1) field", ar_field(shape, rho, 700 + i + shape[0])))
    for stage in STAGES:
        for i in range(acts[stage].shape[0]):
            item = Item(f"{stage}-img{i}", f"{stage} activation", acts[stage][i])
            if stage == "layer3":  # a kind never seen by the fit
                held_out.append(item)
            elif i < 4:
                calibration.append(item)
            else:
                held_out.append(item)
    return {"calibration": calibration, "held_out": held_out}


# --------------------------------------------------------------------------- the real codec
def real_codec(features: torch.Tensor, bits_per_element: float) -> tuple[int, float, torch.Tensor]:
    """``(codestream bits, feature-domain MSE, reconstruction)`` of the real pipeline."""
    quantizer = MinMaxQuantizer(bits=8)
    c, h, w = features.shape
    layout = TileLayout.square(c, h, w)
    q = quantizer.quantize(features)
    image = tile(q.codes, layout)
    target_bytes = bits_per_element * features.numel() / 8
    data = encode_codestream(image, image.size / target_bytes)
    decoded = decode_codestream(data, image.shape)
    rec = torch.from_numpy(quantizer.dequantize(untile(decoded, layout), q.side))
    return 8 * len(data), float((rec - features).double().pow(2).mean()), rec


def measure(
    items: list[Item], rates: tuple[float, ...], proxy: Jpeg2000Proxy, label: str, equal_rate: bool = False
) -> list[dict]:
    """Real codec at every rate, and the proxy's step and rate features at equal MSE; with
    ``equal_rate`` also the proxy's MSE at the step whose predicted bits equal the real bits."""
    points = []
    grid = torch.tensor(STEP_GRID, dtype=torch.float32)
    for n, item in enumerate(items, 1):
        start = time.perf_counter()
        x = item.tensor.float()
        with torch.no_grad():
            transformed = proxy.transform(x[None])
            mse_grid, _ = proxy.sweep(transformed, grid)
        log_mse = np.log(np.maximum.accumulate(mse_grid[0].double().numpy()) + 1e-30)
        for rate in rates:
            bits, mse, _ = real_codec(x, rate)
            saturated = bits < SATURATION * rate * x.numel()
            step = float(np.exp(np.interp(math.log(max(mse, 1e-30)), log_mse, np.log(STEP_GRID))))
            with torch.no_grad():
                feats = proxy.rate_features(transformed, step)[0].double().tolist()
            point = {
                "tensor": item.name, "kind": item.kind, "shape": list(x.shape), "target_bpe": rate,
                "bits": bits, "bpe": bits / x.numel(), "mse": mse, "saturated": bool(saturated),
                "step": step, "features": feats,
            }
            if equal_rate:
                with torch.no_grad():
                    step_r = proxy.step_for_bits(transformed, float(bits))
                    rec, _ = proxy.quantize(transformed, step_r)
                point["step_at_equal_rate"] = float(step_r)
                point["proxy_mse_at_equal_rate"] = float((rec[0] - x).double().pow(2).mean())
            points.append(point)
        print(f"  {label} {n}/{len(items)} {item.name:18s} {time.perf_counter() - start:5.1f} s", flush=True)
    return points


# --------------------------------------------------------------------------- the fit
def fit(points: list[dict]) -> tuple[np.ndarray, dict]:
    """Weights minimizing the squared *relative* error of ``bits``; and the residual stats."""
    use = [p for p in points if not p["saturated"]]
    bits = np.array([p["bits"] for p in use], float)
    x = np.array([p["features"] for p in use], float)
    weights, *_ = np.linalg.lstsq(x / bits[:, None], np.ones(len(bits)), rcond=None)
    return weights, accuracy(x @ weights, bits) | {"points": len(use), "saturated_points_skipped": len(points) - len(use)}


def accuracy(predicted: np.ndarray, real: np.ndarray) -> dict:
    """R², Spearman ρ, median / p90 / max relative error of predicted vs real bits."""
    from scipy.stats import spearmanr

    rel = np.abs(predicted - real) / real
    r2 = 1 - np.sum((predicted - real) ** 2) / np.sum((real - real.mean()) ** 2)
    return {
        "r2": float(r2),
        "spearman": float(spearmanr(predicted, real).statistic),
        "median_relative_error": float(np.median(rel)),
        "p90_relative_error": float(np.percentile(rel, 90)),
        "max_relative_error": float(rel.max()),
        "median_signed_error": float(np.median((predicted - real) / real)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cilight-proxy-cache",
                        help="where the trained model's activations are cached")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OpenJPEG runs on one)")
    parser.add_argument("--refit", type=Path, help="refit from a saved calibration-data JSON, without OpenJPEG")
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE, help="calibration JSON to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    start = time.perf_counter()
    proxy = Jpeg2000Proxy().eval()  # the features do not depend on the weights
    if args.refit:
        points = json.loads(args.refit.read_text())["points"]
    else:
        items = datasets(args.cache)["calibration"]
        print(f"calibrating on {len(items)} tensors × {len(CALIBRATION_RATES)} rates", flush=True)
        points = measure(items, CALIBRATION_RATES, proxy, "calibration")
    weights, stats = fit(points)
    calibration = ProxyCalibration(
        weights=tuple(weights), window=proxy.calibration.window, codeblock=CODEBLOCK,
        scale_floor=proxy.calibration.scale_floor,
        fit={
            "script": "benchmarks/calibrate_proxy.py",
            "data": "benchmarks/results/proxy_calibration_data.json",
            "objective": "least squares on the relative error of bits at equal feature-domain MSE",
            **{k: round(v, 5) if isinstance(v, float) else v for k, v in stats.items()},
        },
    )
    calibration.save(args.out)
    print(f"wrote {args.out}: weights {dict(zip(RATE_FEATURES, np.round(weights, 4).tolist()))}")
    print(f"in-sample: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()})}")
    if not args.refit:
        write_result(
            RESULTS / "proxy_calibration_data.json",
            {
                "benchmark": "proxy_calibration",
                "command": "python -m benchmarks.calibrate_proxy",
                "codeblock": CODEBLOCK,
                "features": list(RATE_FEATURES),
                "weights": weights.tolist(),
                "fit": stats,
                "wall_seconds": time.perf_counter() - start,
                "points": points,
            },
        )


if __name__ == "__main__":
    sys.exit(main())
