"""Time to an argument error and to ``--help``, this checkout against an earlier revision, in one run.

Each command is a mistake a user makes in the first minute (an unknown option, a missing
checkpoint, a misspelled subcommand) or ``--help``. Both revisions run every command as a fresh
``python`` process, alternately, ``--repeats`` times, so that a busy machine slows both alike; the
result is the median wall time of each and their ratio (goal: ≤ 0.6 of the earlier revision).
Also recorded per command: the lines printed to stderr and how many of them are warnings.

The earlier revision runs from a temporary ``git worktree`` with this checkout's editable install
switched off (a ``sitecustomize`` drops setuptools' editable finder, and the worktree's folders are
linked into its own ``cilight/`` package), so it imports only its own code.

    python -m benchmarks.startup [--baseline a5d18d2] [--repeats 5] [--out FILE]

Writes JSON (default ``benchmarks/results/startup.json``) naming the machine; a result already
measured for the same two revisions is kept and its missing commands are added (resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import RESULTS, ROOT, write_result

# one mistake per entry point and what it must answer without (compressai, onnx, onnxruntime, matplotlib)
COMMANDS = {
    "train --help": ["train.py", "--help"],
    "train unknown option": ["train.py", "--model.compresibility_weight", "0"],
    "train bad value": ["train.py", "--trainer.max_epochs", "three"],
    "export --help": ["export.py", "--help"],
    "export missing checkpoint": ["export.py", "--ckpt", "MISSING.ckpt", "--out", "OUT"],
    "evaluate misspelled command": ["evaluate.py", "curvs", "--ckpt", "MISSING.ckpt"],
    "evaluate missing checkpoint": ["evaluate.py", "curves", "--ckpt", "MISSING.ckpt"],
    # what any LightningCLI must import before it can read an option: the floor of train.py's times
    "import lightning.pytorch (floor)": ["-c", "import lightning.pytorch"],
}
PACKAGE_FOLDERS = ("ci_models", "datamodules", "codecs", "allocation", "deploy", "evaluation", "configs")
DROP_EDITABLE = (  # setuptools' finder of this checkout, and the path entry of its edge distribution
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')\n"
    "                    and '__editable__' not in type(f).__name__]\n"
    "sys.path_hooks[:] = [h for h in sys.path_hooks if '__editable__' not in repr(h)]\n"
    f"sys.path[:] = [p for p in sys.path if p.rstrip('/') != {str(ROOT / 'edge')!r}]\n"
)


def revision(rev: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                          capture_output=True, text=True).stdout.strip()


def baseline_tree(rev: str, folder: Path) -> dict[str, str]:
    """A worktree of ``rev`` in ``folder`` that imports only its own code; the environment to run it with."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev], check=True,
                   capture_output=True)
    package = folder / "cilight"
    edge = folder / "edge" / "cilight"  # since the edge distribution: the package root and errors live there
    for name in ("__init__.py", "errors.py") if edge.is_dir() else ():
        if not (package / name).exists():
            (package / name).symlink_to(edge / name)
    for name in PACKAGE_FOLDERS:
        if (folder / name).is_dir() and not (package / name).exists():
            (package / name).symlink_to(folder / name)
    (folder / "sitecustomize.py").write_text(DROP_EDITABLE)
    return {"PYTHONPATH": str(folder)}


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "WANDB_MODE": "disabled", **env}, timeout=120)
    return time.perf_counter() - start, proc.stderr, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="a5d18d2", help="the earlier revision (default: before the one-line errors)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args()

    revisions = {"baseline": revision(args.baseline), "current": revision("HEAD")}
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    result = {"benchmark": "startup", "revisions": revisions, "current_has_uncommitted_changes": dirty,
              "repeats": args.repeats, "commands": {}}
    if args.out.is_file():
        saved = json.loads(args.out.read_text())
        if saved.get("revisions") == revisions and saved.get("repeats") == args.repeats:
            result["commands"] = saved["commands"]
    with tempfile.TemporaryDirectory(prefix="cilight-startup-") as tmp:
        tree = Path(tmp) / "baseline"
        sides = {"baseline": (tree, baseline_tree(args.baseline, tree)), "current": (ROOT, {})}
        try:
            for name, argv in COMMANDS.items():
                if name in result["commands"]:
                    continue
                seconds: dict[str, list[float]] = {side: [] for side in sides}
                stderr: dict[str, str] = {}
                codes: dict[str, int] = {}
                for _ in range(args.repeats):
                    for side, (cwd, env) in sides.items():
                        elapsed, stderr[side], codes[side] = run_once(argv, cwd, env)
                        seconds[side].append(elapsed)
                entry = {"argv": argv}
                for side in sides:
                    lines = stderr[side].splitlines()
                    entry[side] = {"median_s": statistics.median(seconds[side]), "seconds": seconds[side],
                                   "exit_code": codes[side], "stderr_lines": len(lines),
                                   "warning_lines": sum("Warning" in line for line in lines),
                                   "last_line": lines[-1] if lines else ""}
                entry["ratio"] = entry["current"]["median_s"] / entry["baseline"]["median_s"]
                result["commands"][name] = entry
                print(f"{name:30s} {entry['baseline']['median_s']:5.2f} s → {entry['current']['median_s']:5.2f} s "
                      f"(×{entry['ratio']:.2f}; warnings {entry['baseline']['warning_lines']} → "
                      f"{entry['current']['warning_lines']})", flush=True)
                write_result(args.out, result)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    ratios = [c["ratio"] for c in result["commands"].values()]
    result["ratio_median"] = statistics.median(ratios)
    result["ratio_by_entry_point"] = {
        ep: statistics.median(c["ratio"] for c in result["commands"].values() if c["argv"][0] == f"{ep}.py")
        for ep in ("train", "export", "evaluate")}
    write_result(args.out, result)


if __name__ == "__main__":
    main()
