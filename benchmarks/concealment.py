"""Accuracy against loss: the thesis' Fig. 3.3 on the embedded data, and the same through the real runtime.

Ulhaq, B.A.Sc. thesis, SFU 2020, §3.2: part of a received feature tensor is lost; the cloud fills
it in (``zero``, ``channel_mean``, ``dataset_mean``, ``hybrid``) and runs on. The thesis reports,
with its best fill, a 0.2% / 2% / 5% accuracy drop at 5 / 10 / 20% of the tensor lost.

Protocol (fixed before the first run):

1. The default model: ``--ckpt`` names a checkpoint of ``python train.py`` with default settings
   (default: train one, seed 0, into ``--work``). ``python export.py`` writes its halves and the
   dataset mean (256 training images) as a user would.
2. **Tensor domain** (Fig. 3.3): the first ``--images`` test images (default: all 128 of the
   split); the Q-layer's output of the stream loses a fraction 0–30% of its elements or of its
   channels (:func:`loss_mask`, one seeded mask per fraction and unit, shared by the strategies),
   is concealed, and the cloud half runs
   in PyTorch. ``channel_mean``/``hybrid`` use the true channel means (what the edge would send).
3. **Runtime**: ``EdgeRuntime`` (PNG, MSS 1,400 bytes, channel-means packet on) → i.i.d. packet
   loss at 1, 5, 10, 20, 30% and Gilbert–Elliott bursts (mean length 4 packets) at 5, 10, 20%,
   three loss seeds each → ``CloudRuntime.receive`` with every strategy → ``cloud.onnx``. The x
   value is the fraction of the tensor that was lost (measured). A frame of which no codes packet
   arrived has nothing to infer from (the runtime says so); such frames are counted and left out,
   and the loss-free reference is recomputed on the same frames.
4. Every metric of every task is reported, and its relative change against the loss-free run
   (worse = positive). The acceptance test: with 5% i.i.d. packet loss, every metric within 2% for
   the best strategy. Packetization cost: bytes of the packets (headers, per-group containers,
   channel means) against the whole-frame containers, for PNG, JPEG q90 and JPEG2000 1 bpe.

    python -m benchmarks.concealment [--ckpt CKPT] [--images 128] [--work /tmp/cilight-concealment] [--table]

Writes ``benchmarks/results/concealment.json`` and ``benchmarks/results/concealment.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmarks.report import RESULTS, ROOT, write_result
from cilight.ci_models.checkpoints import load_model
from cilight.codecs import CONCEALMENT_METHODS, CodecError, channel_means, conceal, loss_mask
from cilight.datamodules.from_checkpoint import test_batches
from cilight.deploy import CloudRuntime, EdgeRuntime, GilbertElliottLoss, IidLoss, retransmission_delay
from cilight.deploy.wire import DATASET_MEAN, read_dataset_mean
from cilight.evaluation.sweep import cloud_outputs
from cilight.evaluation.tables import markdown_table

FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
UNITS = ("element", "channel")
IID_RATES = (0.01, 0.05, 0.1, 0.2, 0.3)
BURST_RATES = (0.05, 0.1, 0.2)
BURST_LENGTH = 4.0
LOSS_SEEDS = (0, 1, 2)
MSS = 1400
PACKET_CODECS = ("png", "jpeg:quality=90", "jpeg2000:bpe=1")
THESIS = {0.05: 0.2, 0.1: 2.0, 0.2: 5.0}  # % accuracy drop at the fraction lost, best fill (Fig. 3.3)
CHUNK = 32


def run(command: list[str]) -> None:
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    print("running:", " ".join(map(str, command)), flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def relative_change(value: float, reference: float, higher_is_better: bool) -> float:
    """Percent by which ``value`` is worse than ``reference`` (positive = worse)."""
    change = (reference - value) if higher_is_better else (value - reference)
    return 100 * change / abs(reference)


def metrics_of(model, outputs: list[dict], batches: list[dict]) -> dict[str, float]:
    metrics = model.task_metrics(sync=False)
    for out, batch in zip(outputs, batches):
        metrics.update(out, batch)
    return {k: float(v) for k, v in metrics.compute().items()}


@torch.no_grad()
def tensor_domain(model, batches: list[dict], dataset_mean: dict[str, np.ndarray]) -> list[dict]:
    """Fig. 3.3: element and channel loss in the Q-layer's output, each strategy, in PyTorch."""
    streams = [[s.features for s in model.run(b["image"], rate=False)[1]] for b in batches]
    means = [torch.from_numpy(dataset_mean[s]) for s in model.split_points]
    rows = []
    configs = [(u, f) for u in UNITS for f in FRACTIONS if f > 0]
    bar = tqdm(total=len(configs) * len(CONCEALMENT_METHODS), desc="tensor-domain loss", unit="config")
    for unit, fraction in configs:
        generator = np.random.default_rng(int(fraction * 1000) + (0 if unit == "element" else 7))
        masks = [[loss_mask(tuple(x.shape), fraction, unit, generator) for x in batch] for batch in streams]
        for method in CONCEALMENT_METHODS:
            outputs = []
            for batch, batch_masks in zip(streams, masks):
                filled = [conceal(x, m, method, channel_mean=channel_means(x), dataset_mean=mu)
                          for x, m, mu in zip(batch, batch_masks, means)]
                outputs.append(cloud_outputs(model, [torch.from_numpy(f) for f in filled], received=True))
            rows.append({"unit": unit, "fraction": fraction, "lost_fraction": fraction, "method": method,
                         "metrics": metrics_of(model, outputs, batches)})
            bar.update()
    bar.close()
    return rows


def torch_outputs(model, outputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {task.name: torch.from_numpy(outputs[task.output_name]) for task in model.tasks}


def runtime_domain(model, onnx: Path, batches: list[dict]) -> tuple[list[dict], dict, dict]:
    """Packets through the real runtime, lost by a seeded link, concealed by each strategy."""
    images = torch.cat([b["image"] for b in batches]).numpy()
    per_image = [{k: v[i : i + 1] for k, v in b.items()} for b in batches for i in range(len(b["image"]))]
    edge, cloud = EdgeRuntime(onnx / "edge.onnx", "png"), CloudRuntime(onnx / "cloud.onnx")
    frames = [p for i in range(0, len(images), CHUNK) for p in edge.packets(images[i : i + CHUNK], mss=MSS,
                                                                           channel_means=True, first_frame=i)]

    def infer(kept: list[list[bytes]], method: str | None) -> tuple[list[int], list[dict], float]:
        """Frames that produced outputs, their outputs (in chunks), and the measured fraction lost."""
        used, outputs, lost, total = [], [], 0.0, 0
        for start in range(0, len(kept), CHUNK):
            packets = [p for f in kept[start : start + CHUNK] for p in f]
            try:
                reception, inputs = cloud.receive(packets, conceal=method)
            except CodecError:  # a frame with nothing usable: take the frames one by one
                good = []
                for f in kept[start : start + CHUNK]:
                    try:
                        cloud.receive(f, conceal=method)
                        good.append(f)
                    except CodecError:
                        pass
                reception, inputs = cloud.receive([p for f in good for p in f], conceal=method)
            used += list(reception.frames)
            outputs.append(torch_outputs(model, cloud.run(inputs)))
            n = sum(s.codes.size for fr in reception.streams for s in fr)
            lost += reception.lost_fraction * n
            total += n
        return used, outputs, lost / total

    def metrics_on(frames_used: list[int], outputs: list[dict]) -> dict[str, float]:
        chunks = [frames_used[i : i + CHUNK] for i in range(0, len(frames_used), CHUNK)]
        targets = [{k: torch.cat([per_image[j][k] for j in chunk]) for k in per_image[0]} for chunk in chunks]
        # outputs came in the same chunks only when no frame was dropped; re-chunk them to match
        flat = {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}
        outs = [{k: v[i : i + CHUNK] for k, v in flat.items()} for i in range(0, len(frames_used), CHUNK)]
        return metrics_of(model, outs, targets)

    directions = model.task_metrics(sync=False).directions
    clean_frames, clean_outputs, _ = infer(frames, None)
    clean_flat = {k: torch.cat([o[k] for o in clean_outputs]) for k in clean_outputs[0]}
    reference = metrics_on(clean_frames, clean_outputs)
    rows = []
    links = [("iid", r, lambda r, s: IidLoss(r, seed=s)) for r in IID_RATES]
    links += [("burst", r, lambda r, s: GilbertElliottLoss.bursts(r, BURST_LENGTH, seed=s)) for r in BURST_RATES]
    bar = tqdm(total=len(links) * len(LOSS_SEEDS) * len(CONCEALMENT_METHODS), desc="runtime packet loss", unit="run")
    for kind, rate, make in links:
        for seed in LOSS_SEEDS:
            link = make(rate, seed)
            kept = [link.transmit(f) for f in frames]
            sent = sum(map(len, frames))
            arrived = sum(map(len, kept))
            for method in CONCEALMENT_METHODS:
                used, outputs, lost = infer(kept, method)
                metrics = metrics_on(used, outputs)
                if len(used) < len(frames):  # the loss-free reference on the same frames
                    index = [clean_frames.index(f) for f in used]
                    subset = {k: v[index] for k, v in clean_flat.items()}
                    base = metrics_on(used, [subset])
                else:
                    base = reference
                rows.append({"link": kind, "packet_loss": rate, "seed": seed, "method": method,
                             "packets_sent": sent, "packets_lost": sent - arrived, "lost_fraction": lost,
                             "frames": len(frames), "frames_without_codes": len(frames) - len(used),
                             "metrics": metrics, "reference_same_frames": base,
                             "relative_change": {k: relative_change(metrics[k], base[k], directions[k]) for k in metrics}})
                bar.update()
    bar.close()

    cost, sample = {}, images[:64]
    for codec in PACKET_CODECS:
        edge_c = EdgeRuntime(onnx / "edge.onnx", codec)
        whole = sum(map(len, edge_c.encode(sample)))
        packets = edge_c.packets(sample, mss=MSS)
        means = sum(len(p) for f in edge_c.packets(sample, mss=MSS, channel_means=True) for p in f) - sum(
            len(p) for f in packets for p in f)
        n = len(sample)
        cost[codec] = {"frame_bytes_per_image": whole / n,
                       "packet_bytes_per_image": sum(len(p) for f in packets for p in f) / n,
                       "packets_per_image": sum(map(len, packets)) / n,
                       "channel_means_bytes_per_image": means / n}
        cost[codec]["overhead_percent"] = 100 * (cost[codec]["packet_bytes_per_image"] / cost[codec]["frame_bytes_per_image"] - 1)
        print(f"{codec}: {cost[codec]['frame_bytes_per_image']:.0f} B/frame → {cost[codec]['packet_bytes_per_image']:.0f} B in "
              f"{cost[codec]['packets_per_image']:.1f} packets (+{cost[codec]['overhead_percent']:.1f}%), "
              f"+{cost[codec]['channel_means_bytes_per_image']:.0f} B channel means")
    return rows, reference, cost


def summarize(rows: list[dict], directions: dict[str, bool]) -> list[dict]:
    """Mean ± std over loss seeds of the lost fraction and each metric's relative change."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["link"], r["packet_loss"], r["method"]), []).append(r)
    out = []
    for (link, rate, method), rs in groups.items():
        change = {k: (float(np.mean([r["relative_change"][k] for r in rs])), float(np.std([r["relative_change"][k] for r in rs])))
                  for k in directions}
        out.append({"link": link, "packet_loss": rate, "method": method,
                    "lost_fraction": float(np.mean([r["lost_fraction"] for r in rs])),
                    "frames_without_codes": int(sum(r["frames_without_codes"] for r in rs)),
                    "relative_change_mean_std": change})
    return out


def plot(tensor_rows, reference_torch, summary, directions, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(directions)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.0 * len(keys), 3.6))
    colors = dict(zip(CONCEALMENT_METHODS, ("tab:gray", "tab:orange", "tab:blue", "tab:green")))
    for ax, key in zip(np.atleast_1d(axes), keys):
        for unit, style in (("element", ":"), ("channel", "--")):
            for method in CONCEALMENT_METHODS:
                pts = [(0.0, 0.0)] + [(r["fraction"], relative_change(r["metrics"][key], reference_torch[key], directions[key]))
                                      for r in tensor_rows if r["unit"] == unit and r["method"] == method]
                ax.plot(*zip(*pts), style, color=colors[method], lw=1)
        for method in CONCEALMENT_METHODS:
            pts = sorted((s["lost_fraction"], s["relative_change_mean_std"][key][0]) for s in summary
                         if s["link"] == "iid" and s["method"] == method)
            ax.plot(*zip(*[(0.0, 0.0), *pts]), "o-", color=colors[method], ms=3, lw=1.3, label=method)
        if key.startswith("segmentation"):
            ax.plot(list(THESIS), list(THESIS.values()), "kx", ms=7, label="thesis Fig. 3.3 (best fill)")
        ax.set_title(key)
        ax.set_xlabel("fraction of the tensor lost")
        ax.set_ylabel("worse than loss-free (%)")
    np.atleast_1d(axes)[0].legend(fontsize=7, title="runtime, packets (solid)\nelement : / channel --", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TABLE_METRICS = ("segmentation_miou", "disparity_rmse", "reconstruction_psnr")
LATENCY_RTTS = (0.005, 0.05)  # seconds: Wi-Fi to a nearby server, a cellular link
LATENCY_BANDWIDTH = 1e6  # bytes per second


def latency_rows(result: dict) -> list[dict]:
    """Waiting (selective-repeat ARQ, thesis §4.2 extended) against concealing at each i.i.d. loss:
    the expected extra latency of a PNG frame of the measured packet count and size, and the
    accuracy the best fill gives up instead (from the runtime measurement)."""
    cost = result["packetization_cost"]["png"]
    packets = max(1, round(cost["packets_per_image"]))
    size = cost["packet_bytes_per_image"] / cost["packets_per_image"]
    rows = []
    for rate in IID_RATES:
        fills = [s for s in result["runtime_summary"] if s["link"] == "iid" and s["packet_loss"] == rate]
        best = min(fills, key=lambda s: max(v[0] for v in s["relative_change_mean_std"].values()))
        rows.append({"packet_loss": rate, "packets": packets, "packet_bytes": size, "bandwidth": LATENCY_BANDWIDTH,
                     "retransmission_ms": {str(rtt): 1e3 * retransmission_delay(packets, rate, rtt, size, LATENCY_BANDWIDTH)
                                           for rtt in LATENCY_RTTS},
                     "conceal_strategy": best["method"],
                     "conceal_change_percent": {k: v[0] for k, v in best["relative_change_mean_std"].items()}})
    return rows


def readme_tables(result: dict) -> str:
    """The README's tables from ``concealment.json``: runtime packet loss, then Fig. 3.3 beside the thesis,
    then waiting against concealing."""
    keys = [k for k in TABLE_METRICS if k in result["directions"]]

    def cell(change: dict) -> str:
        return " / ".join(f"{change[k]:.2f}" for k in keys)

    summary = {(s["link"], s["packet_loss"], s["method"]): s for s in result["runtime_summary"]}
    runtime = []
    for link, rates in (("iid", IID_RATES), ("burst", BURST_RATES)):
        for rate in rates:
            rows = [summary[(link, rate, m)] for m in CONCEALMENT_METHODS]
            runtime.append([f"{link} {100 * rate:g}%", f"{100 * rows[0]['lost_fraction']:.1f}%",
                            *(cell({k: v[0] for k, v in r["relative_change_mean_std"].items()}) for r in rows)])
    reference = result["reference_torch"]
    rows = {(r["unit"], r["fraction"], r["method"]): r for r in result["tensor_domain"]}
    tensor = []
    for fraction in FRACTIONS[1:]:
        cells = []
        for unit in UNITS:
            for method in ("dataset_mean", "hybrid"):
                metrics = rows[(unit, fraction, method)]["metrics"]
                cells.append(cell({k: relative_change(metrics[k], reference[k], result["directions"][k]) for k in keys}))
        tensor.append([f"{100 * fraction:g}%", f"{THESIS[fraction]:g}" if fraction in THESIS else "", *cells])
    waiting = [[f"{100 * row['packet_loss']:g}%", *(f"+{row['retransmission_ms'][str(r)]:.1f} ms" for r in LATENCY_RTTS),
                f"+0 ms, {row['conceal_strategy']}: {cell(row['conceal_change_percent'])}%"]
               for row in result.get("latency_under_loss") or latency_rows(result)]
    return "\n\n".join((
        markdown_table(["link, packet loss", "tensor lost", *CONCEALMENT_METHODS], runtime),
        markdown_table(["tensor lost", "thesis, best fill", "element, dataset_mean", "element, hybrid", "channel, dataset_mean",
                        "channel, hybrid"], tensor),
        markdown_table(["packet loss", *(f"wait, RTT {1e3 * r:g} ms" for r in LATENCY_RTTS),
                        "conceal: fill, worse by (mIoU / RMSE / PSNR)"], waiting)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="a checkpoint of the default model (default: train one)")
    parser.add_argument("--images", type=int, default=128, help="test images (default 128: the whole test split)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cilight-concealment"))
    parser.add_argument("--table", action="store_true", help="print the README tables from the saved JSON and stop")
    args = parser.parse_args()
    if args.table:
        print(readme_tables(json.loads((RESULTS / "concealment.json").read_text())))
        return
    seconds = {}
    start = time.perf_counter()
    ckpt = args.ckpt
    if ckpt is None:
        run_dir = args.work / "default_s0"
        if not (run_dir / "checkpoints").is_dir() or not list((run_dir / "checkpoints").glob("best-*.ckpt")):
            run([sys.executable, "train.py", "--seed_everything", "0", "--run_name", "default_s0",
                 "--trainer.default_root_dir", str(args.work), "--trainer.enable_progress_bar", "false"])
        ckpt = min((run_dir / "checkpoints").glob("best-*.ckpt"))
        seconds["train"] = time.perf_counter() - start
    onnx = args.work / "onnx"
    if not (onnx / DATASET_MEAN).is_file():
        run([sys.executable, "export.py", "--ckpt", str(ckpt), "--out", str(onnx), "--codec", "png"])
    model, data = load_model(ckpt)
    batches = test_batches(data, images=args.images)
    cloud = CloudRuntime(onnx / "cloud.onnx")
    directions = model.task_metrics(sync=False).directions

    start = time.perf_counter()
    with torch.no_grad():
        clean = [cloud_outputs(model, [s.features for s in model.run(b["image"], rate=False)[1]], received=True)
                 for b in batches]
    reference_torch = metrics_of(model, clean, batches)
    tensor_rows = tensor_domain(model, batches, read_dataset_mean(onnx / DATASET_MEAN, cloud.meta))
    seconds["tensor_domain"] = time.perf_counter() - start
    start = time.perf_counter()
    runtime_rows, reference_runtime, cost = runtime_domain(model, onnx, batches)
    seconds["runtime"] = time.perf_counter() - start
    summary = summarize(runtime_rows, directions)

    at_5 = [s for s in summary if s["link"] == "iid" and s["packet_loss"] == 0.05]
    best = min(at_5, key=lambda s: max(v[0] for v in s["relative_change_mean_std"].values()))
    worst_metric = max(best["relative_change_mean_std"].items(), key=lambda kv: kv[1][0])
    acceptance = {"strategy": best["method"], "lost_fraction": best["lost_fraction"],
                  "relative_change": best["relative_change_mean_std"],
                  "worst_metric": worst_metric[0], "worst_change_percent": worst_metric[1][0],
                  "met": bool(worst_metric[1][0] <= 2.0)}
    print(f"5% i.i.d. packet loss, best strategy {best['method']}: tensor lost {100 * best['lost_fraction']:.1f}%, "
          f"worst metric {worst_metric[0]} {worst_metric[1][0]:+.2f}% → {'met' if acceptance['met'] else 'NOT met'} (≤ 2%)")
    for s in sorted(summary, key=lambda s: (s["link"], s["packet_loss"], s["method"])):
        change = ", ".join(f"{k} {v[0]:+.2f}±{v[1]:.2f}%" for k, v in s["relative_change_mean_std"].items())
        print(f"{s['link']:5s} {100 * s['packet_loss']:4.0f}% {s['method']:12s} lost {100 * s['lost_fraction']:5.1f}%  {change}")
    plot(tensor_rows, reference_torch, summary, directions, RESULTS / "concealment.png")
    result = {"packetization_cost": cost, "runtime_summary": summary}
    write_result(RESULTS / "concealment.json", {
        "benchmark": "concealment",
        "latency_under_loss": latency_rows(result),
        "checkpoint": str(ckpt),
        "images": sum(len(b["image"]) for b in batches),
        "mss": MSS,
        "reference_torch": reference_torch,
        "reference_runtime": reference_runtime,
        "directions": directions,
        "tensor_domain": tensor_rows,
        "runtime": runtime_rows,
        "runtime_summary": summary,
        "packetization_cost": cost,
        "acceptance_5_percent_iid": acceptance,
        "thesis_fig_3_3": {str(k): v for k, v in THESIS.items()},
        "seconds": seconds,
    })


if __name__ == "__main__":
    main()
