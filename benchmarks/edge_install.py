"""The edge install: a fresh venv with only ``cilight-edge``, its size on disk, and what it can import.

The point of exporting ONNX halves is that a device runs ``edge.onnx`` and sends bytes without the
training stack. This builds that environment the way a device would — ``python -m venv`` and
``pip install ./edge`` (numpy, ONNX Runtime, Pillow, constriction; the versions of
``constraints.txt``) — then measures it: the venv's size on disk, each installed distribution's share,
whether torch, lightning or compressai can be imported there (they must not), the import time of
``cilight.deploy`` and one frame through ``EdgeRuntime``/``CloudRuntime`` in the edge venv, with the halves
of ``--halves`` or, by default, of the default model (``MultiTaskCI()``, untrained: only the runtime is
measured) exported here at 64×128. :func:`build_edge_venv` is what the test suite's edge-install test uses too.

    python -m benchmarks.edge_install [--venv DIR] [--halves DIR] [--out FILE]

Writes JSON (default ``benchmarks/results/edge_install.json``) naming the machine. A venv already
built in ``--venv`` is measured again rather than rebuilt (resumable: the build is the slow part).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRAINING_STACK = ("torch", "torchvision", "lightning", "compressai")
FULL_INSTALL_GB = 6.2  # the environment that ran the runtimes before the edge install existed (CUDA torch wheels)


def pip(python: Path, *args: str, timeout: float = 900) -> None:
    """``python -m pip …`` quietly; its last lines in the error if it fails."""
    proc = subprocess.run([str(python), "-m", "pip", *args, "--disable-pip-version-check", "-q"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in line]
        raise RuntimeError(f"pip {' '.join(args[:2])} failed:\n" + "\n".join(lines[-30:]))


def build_edge_venv(folder: Path, extra: tuple[str, ...] = ()) -> Path:
    """A venv in ``folder`` with only the edge distribution (this checkout's ``edge/``, a regular install, not
    editable) and ``extra`` packages (a test runner); returns its python. Reused when it is already there."""
    python = folder / "bin" / "python"
    stamp = folder / ".cilight-edge-installed"
    wanted = " ".join(("edge", *extra))
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True, timeout=300)
    pip(python, "install", str(ROOT / "edge"), *extra, "-c", str(ROOT / "constraints.txt"))
    stamp.write_text(wanted)
    return python


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (links not followed): what the venv takes on disk."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def distribution_sizes(python: Path) -> dict[str, int]:
    """Bytes on disk of every installed distribution (its RECORD's files), largest first."""
    script = (
        "import json, os\nfrom importlib.metadata import distributions\nout = {}\n"
        "for d in distributions():\n"
        "    files = [d.locate_file(f) for f in (d.files or [])]\n"
        "    out[d.metadata['Name']] = sum(os.path.getsize(f) for f in files if os.path.isfile(f))\n"
        "print(json.dumps(out))\n"
    )
    sizes = json.loads(subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True,
                                      cwd=python.parents[1]).stdout)
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def importable(python: Path, modules: tuple[str, ...]) -> dict[str, bool]:
    script = ("import importlib.util, json\n"
              f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {list(modules)!r}}}))")
    return json.loads(subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True,
                                     cwd=python.parents[1]).stdout)


def import_seconds(python: Path, repeats: int = 5) -> float:
    """Median wall time of a fresh ``python -c "import cilight.deploy"``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([str(python), "-c", "import cilight.deploy"], check=True, timeout=120, cwd=python.parents[1])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def one_frame(python: Path, halves: Path) -> dict:
    """One image of the halves' input size through EdgeRuntime and CloudRuntime in the edge venv."""
    script = (
        "import json, sys, numpy as np\n"
        "from cilight.deploy import CloudRuntime, EdgeRuntime\n"
        "edge = EdgeRuntime(sys.argv[1] + '/edge.onnx'); cloud = CloudRuntime(sys.argv[1] + '/cloud.onnx')\n"
        "image = np.random.default_rng(0).random((1, *edge.meta.input_shape), dtype=np.float32)\n"
        "frame = edge.encode(image)[0]\n"
        "out = cloud.infer(frame)\n"
        "print(json.dumps({'frame_bytes': len(frame), 'outputs': {k: list(v.shape) for k, v in out.items()},"
        " 'torch_imported': 'torch' in sys.modules}))\n"
    )
    proc = subprocess.run([str(python), "-c", script, str(halves.resolve())], capture_output=True, text=True, timeout=300,
                          cwd=python.parents[1])
    if proc.returncode:
        raise RuntimeError(f"the edge venv could not run the halves in {halves}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def default_halves(folder: Path) -> Path:
    """The untrained default model's halves at 64×128 in ``folder`` (exported once; the full install does it)."""
    if not (folder / "cloud.onnx").is_file():
        import torch

        from cilight.ci_models import MultiTaskCI
        from cilight.onnx_export import export_halves

        torch.manual_seed(0)
        images = torch.rand(2, 3, 64, 128)
        export_halves(MultiTaskCI().eval(), folder, 64, 128, images)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / "runs" / "edge_venv", help="where to build the venv")
    parser.add_argument("--halves", type=Path, default=None,
                        help="a folder of edge.onnx/cloud.onnx to run one frame (default: the untrained default model's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "edge_install.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    python = build_edge_venv(args.venv)
    build_s = time.perf_counter() - start
    halves = args.halves or default_halves(args.venv.parent / "edge_install_halves")
    sizes = distribution_sizes(python)
    total = folder_bytes(args.venv)
    result = {
        "command": "python -m benchmarks.edge_install" + (f" --halves {args.halves}" if args.halves else ""),
        "halves": str(halves) if args.halves else "the default model, untrained, 64×128 (MultiTaskCI())",
        "venv_bytes": total,
        "venv_mb": round(total / 2**20, 1),
        "goal_mb": 200,
        "full_install_gb": FULL_INSTALL_GB,
        "distributions_mb": {k: round(v / 2**20, 1) for k, v in sizes.items()},
        "training_stack_importable": importable(python, TRAINING_STACK),
        "import_cilight_deploy_s": round(import_seconds(python), 3),
        "build_s": round(build_s, 1),
        "one_frame": one_frame(python, halves),
    }
    from benchmarks.report import machine  # the training install's description of this machine

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    print(f"edge venv: {result['venv_mb']} MB on disk (goal ≤ 200 MB; the full install {FULL_INSTALL_GB} GB); "
          f"largest: {', '.join(f'{k} {v} MB' for k, v in list(result['distributions_mb'].items())[:4])}; "
          f"training stack importable: {[k for k, v in result['training_stack_importable'].items() if v] or 'none'}")
    print(f"wrote {args.out}")
    return 0 if not any(result["training_stack_importable"].values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    sys.exit(main())
