"""How well the differentiable JPEG2000 proxy predicts OpenJPEG, and how fast it is.

On the *held-out* tensors of ``benchmarks/calibrate_proxy.py`` (other seeds and images than
the fit, plus two kinds the fit never saw: AR(1) fields and layer3 activations), at target
rates 0.12 … 1.7 bits per element:

* **bits** — the proxy's predicted bits at the step where its feature-domain MSE equals the
  real decoded MSE, against the real codestream bits: R², Spearman ρ, median and p90
  relative error (overall and per kind);
* **MSE at equal rate** — the proxy's feature-domain MSE at the step whose predicted bits
  equal the real codestream's (bisection on ``log step``), divided by the real decoded MSE:
  median, p10, p90;
* **speed** — for a batch of 32 tensors (each one tiled image) of every ResNet split shape:
  proxy forward (evaluation, no gradient), forward + backward (training mode, gradient of
  ``MSE + λ·bits`` to the input), and OpenJPEG encode + decode of the same 32 tensors through
  the real pipeline at about the same rate. OpenJPEG (Pillow) runs on one thread, so torch is
  timed on one thread too unless ``--threads`` says otherwise.

Points where OpenJPEG cannot reach the target (it runs out of coding passes: the codestream
is below 90 % of the target) are reported and left out of the statistics.

    python -m benchmarks.proxy_accuracy [--cache DIR] [--threads N] [--repeats N]

Writes ``benchmarks/results/proxy_accuracy.json`` naming the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.calibrate_proxy import HELD_OUT_RATES, SHAPES, accuracy, datasets, measure, real_codec, smooth_field
from benchmarks.report import RESULTS, write_result
from cilight.ci_models.proxy import Jpeg2000Proxy

ACCEPTANCE = {
    "bits_r2_min": 0.995,
    "bits_median_relative_error_max": 0.035,
    "bits_p90_relative_error_max": 0.08,
    "mse_ratio_median_range": [0.95, 1.05],
    "forward_speedup_min": 4.0,
}


def bits_and_mse(points: list[dict], proxy: Jpeg2000Proxy) -> dict:
    weights = np.array(proxy.calibration.weights)
    use = [p for p in points if not p["saturated"]]
    real = np.array([p["bits"] for p in use], float)
    predicted = np.array([p["features"] for p in use], float) @ weights
    ratio = np.array([p["proxy_mse_at_equal_rate"] / p["mse"] for p in use])
    per_kind = {}
    for kind in sorted({p["kind"] for p in use}):
        idx = [i for i, p in enumerate(use) if p["kind"] == kind]
        per_kind[kind] = {
            "points": len(idx),
            **{k: v for k, v in accuracy(predicted[idx], real[idx]).items() if k != "spearman"},
            "mse_ratio_median": float(np.median(ratio[idx])),
        }
    return {
        "points": len(use),
        "saturated_points_skipped": len(points) - len(use),
        "bits": accuracy(predicted, real),
        "mse_ratio_at_equal_rate": {
            "median": float(np.median(ratio)),
            "p10": float(np.percentile(ratio, 10)),
            "p90": float(np.percentile(ratio, 90)),
            "median_abs_deviation_from_1": float(np.median(np.abs(ratio - 1))),
        },
        "per_kind": per_kind,
    }


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def speed(proxy: Jpeg2000Proxy, repeats: int, batch: int = 32, bpe: float = 0.5) -> dict:
    """Best-of-``repeats`` seconds for ``batch`` tensors of every shape."""
    out = {}
    for shape in SHAPES:
        x = torch.stack([smooth_field(shape, 1.5, 5000 + i) for i in range(batch)])
        with torch.no_grad():
            step = proxy.step_for_bits(proxy.transform(x), bpe * x[0].numel()).median().item()

        def forward():
            with torch.no_grad():
                proxy.eval()(x, step)

        def forward_backward():
            xg = x.clone().requires_grad_(True)
            rec, bits = proxy.train()(xg, step)
            ((rec - x).pow(2).mean() + 1e-9 * bits.mean()).backward()

        def openjpeg():
            for s in x:
                real_codec(s, bpe)

        t_fwd, t_bwd, t_oj = timed(forward, repeats), timed(forward_backward, repeats), timed(openjpeg, repeats)
        proxy.eval()
        out["x".join(map(str, shape))] = {
            "batch": batch,
            "step": step,
            "proxy_forward_s": t_fwd,
            "proxy_forward_backward_s": t_bwd,
            "openjpeg_encode_decode_s": t_oj,
            "forward_speedup": t_oj / t_fwd,
            "forward_backward_speedup": t_oj / t_bwd,
        }
        print(f"  speed {shape}: forward {t_fwd:.3f} s, forward+backward {t_bwd:.3f} s, OpenJPEG {t_oj:.3f} s "
              f"(×{t_oj / t_fwd:.1f} / ×{t_oj / t_bwd:.1f})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cilight-proxy-cache")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OpenJPEG runs on one)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--speed-threads", type=int, nargs="+", default=[1],
                        help="torch thread counts to time the proxy with (OpenJPEG always runs on one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "proxy_accuracy.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    start = time.perf_counter()
    proxy = Jpeg2000Proxy().eval()
    items = datasets(args.cache)["held_out"]
    print(f"held-out: {len(items)} tensors × {len(HELD_OUT_RATES)} rates", flush=True)
    points = measure(items, HELD_OUT_RATES, proxy, "held-out", equal_rate=True)
    stats = bits_and_mse(points, proxy)
    print("bits:", {k: round(v, 4) for k, v in stats["bits"].items()})
    print("MSE ratio proxy/real at equal rate:", {k: round(v, 4) for k, v in stats["mse_ratio_at_equal_rate"].items()})
    for kind, s in stats["per_kind"].items():
        print(f"  {kind:20s} median {s['median_relative_error']:.3f} p90 {s['p90_relative_error']:.3f} "
              f"bias {s['median_signed_error']:+.3f} MSE ratio {s['mse_ratio_median']:.3f}")
    load_before = list(os.getloadavg())
    timings = {}
    for threads in args.speed_threads:
        torch.set_num_threads(threads)
        print(f"speed with {threads} torch thread(s):", flush=True)
        timings[f"torch_threads_{threads}"] = speed(proxy, args.repeats)
    torch.set_num_threads(args.threads)
    speedups = [t["forward_speedup"] for t in timings[f"torch_threads_{args.speed_threads[0]}"].values()]
    verdict = {
        "bits_r2": stats["bits"]["r2"] >= ACCEPTANCE["bits_r2_min"],
        "bits_median_relative_error": stats["bits"]["median_relative_error"] <= ACCEPTANCE["bits_median_relative_error_max"],
        "bits_p90_relative_error": stats["bits"]["p90_relative_error"] <= ACCEPTANCE["bits_p90_relative_error_max"],
        "mse_ratio_median": ACCEPTANCE["mse_ratio_median_range"][0]
        <= stats["mse_ratio_at_equal_rate"]["median"]
        <= ACCEPTANCE["mse_ratio_median_range"][1],
        "forward_speedup_every_shape": min(speedups) >= ACCEPTANCE["forward_speedup_min"],
        "forward_speedup_median_shape": float(np.median(speedups)) >= ACCEPTANCE["forward_speedup_min"],
    }
    print("acceptance:", verdict)
    write_result(
        args.out,
        {
            "benchmark": "proxy_accuracy",
            "command": "python -m benchmarks.proxy_accuracy" + (f" --threads {args.threads}" if args.threads != 1 else ""),
            "calibration": {"weights": list(proxy.calibration.weights), "fit": proxy.calibration.fit},
            "held_out_rates_bpe": list(HELD_OUT_RATES),
            "acceptance": ACCEPTANCE,
            "verdict": verdict,
            **stats,
            "speed": timings,
            "speed_note": "batch of 32 tensors = 32 tiled images; OpenJPEG = the real pipeline (min-max, tile, "
            "encode, decode, untile, dequantize) through Pillow on one thread; best of --repeats; the machine is "
            "shared, so the load averages are recorded",
            "load_average_before_speed": load_before,
            "load_average_at_end": list(os.getloadavg()),
            "wall_seconds": time.perf_counter() - start,
            "points": points,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
