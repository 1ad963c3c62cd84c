"""The command lines' bad-input corpus: every mistake is one line naming the value, and nothing is written.

The probe's cases (``t…`` train.py, ``e…`` export.py, ``v…`` evaluate.py, by the probe's ids; options
that have since moved under ``--model.transmission`` are tried under both names) and more of the same
kind (``own-…``). Each runs in this process through the entry point's ``main(argv)`` and is checked for
its exit status, for exactly one line on stderr (``error: …``) that contains the value the user gave,
and for nothing written: no run folder, no ``--out`` folder, nothing new beside the checkpoint. The
Python API's corpus is ``test_bad_inputs_api.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY, run_entry_point

from cilight.cli import main as train_main
from cilight.evaluate_cli import main as evaluate_main
from cilight.export_cli import main as export_main

ENTRY_POINTS = {"train": (train_main, "train.py"), "export": (export_main, "export.py"),
                "evaluate": (evaluate_main, "evaluate.py")}
# train.py options of a run that would take seconds, if it ran: every case must stop before it trains
T = [*TINY, "--trainer.max_steps", "1", "--trainer.default_root_dir", "RUNS"]
Q = "--model.transmission"

# (id, entry point, argv, exit status, text the one line must contain)
CASES = [
    ("t01", "train", [*T, "--model.compresibility_weight", "0"], 2, "compresibility_weight"),
    ("t01b", "train", [*T, f"{Q}.compresibility_weight", "0"], 2, "did you mean --model.transmission.compressibility_weight"),
    ("t02", "train", [*T, "--data.height", "100"], 2, "100"),
    ("t03", "train", [*T, "--trainer.max_epochs", "three"], 2, "three"),
    ("t04", "train", [*T, "--trainer.max_epochs", "-3"], 2, "-3"),
    ("t05", "train", [*T, "--model.quantization_bits", "0"], 2, "quantization_bits"),
    ("t05b", "train", [*T, f"{Q}.bits", "0"], 2, "0"),
    ("t06", "train", [*T, "--model.quantization_bits", "17"], 2, "quantization_bits"),
    ("t06b", "train", [*T, f"{Q}.bits", "17"], 2, "17"),
    ("t07", "train", [*T, "--model.backbone", "resnet99"], 2, "resnet99"),
    ("t08", "train", [*T, "--model.split_points", "[layer9]"], 2, "layer9"),
    ("t09", "train", [*T, "--model.tasks", "[segmentation,edges]"], 2, "edges"),
    ("t10", "train", [*T, "--config", "MISSING.yaml"], 2, "MISSING.yaml"),
    ("t11", "train", [*T, "--config", "MALFORMED.yaml"], 2, "MALFORMED.yaml: line 3"),
    ("t12", "train", [*T, "--config", ROOT / "configs" / "cityscapes.yaml", "--data.root", "MISSING_FOLDER"], 2,
     "MISSING_FOLDER"),
    ("t13", "train", [*T, "--data.width", "100"], 2, "100"),
    ("t14", "train", [*T, "--model.rate_loss", "bogus"], 2, "rate_loss"),
    ("t14b", "train", [*T, f"{Q}.rate_loss", "bogus"], 2, "bogus"),
    ("t15", "train", [*T, "--data.batch_size", "0"], 2, "batch_size"),
    ("t16", "train", [*T, "--model.codec_noise_probability", "2"], 2, "codec_noise_probability"),
    ("t16b", "train", [*T, f"{Q}.codec_noise_probability", "2"], 2, "2"),
    ("t17", "train", [*T, "--model.backbone_weights", "MISSING.pt"], 2, "MISSING.pt"),
    ("t18", "train", [*T, "--trainer.accelerator", "gpu"], 2, "--trainer.accelerator gpu"),
    ("t19", "train", [*T, "--ckpt_path", "MISSING.ckpt"], 2, "MISSING.ckpt: no such file"),
    ("t20", "train", [*T, "--model.rate_bpe_range", "[2.0,0.1]"], 2, "rate_bpe_range"),
    ("t20b", "train", [*T, f"{Q}.rate_bpe_range", "[2.0,0.1]"], 2, "2.0"),
    ("t21", "train", [*T, "--ckpt_path", "GOOD_RUN"], 2, "is a folder"),
    ("t22", "train", [*T, "--ckpt_path", "TEXT_FILE"], 2, "TEXT_FILE: not a PyTorch archive"),
    ("t23", "train", [*T, "--ckpt_path", "TRUNCATED_CKPT"], 2, "TRUNCATED_CKPT: a PyTorch archive that cannot be read"),
    ("t24", "train", [*T, "--model.backbone", "resnet34", "--ckpt_path", "GOOD_CKPT"], 2,
     "backbone=resnet18 (configured: resnet34)"),
    ("t25", "train", [*T, "--ckpt_path", "BAF_CKPT"], 2, "is a BaFPredictor checkpoint; the configured model is a MultiTaskCI"),
    ("t26", "train", [*T, "--data.num_train", "0"], 2, "num_train"),
    ("t27", "train", [*T, "--model.bottleneck", "bogus"], 2, "bottleneck"),
    ("t27b", "train", [*T, Q, "BottleneckTransmission", f"{Q}.prior", "bogus"], 2, "bogus"),
    ("t28", "train", [*T, "--model.rate_lambda", "-1", "--model.bottleneck", "factorized"], 2, "rate_lambda"),
    ("t28b", "train", [*T, Q, "BottleneckTransmission", f"{Q}.rate_lambda", "-1"], 2, "-1"),
    ("t29", "train", [*T, "extra_positional"], 2, "extra_positional"),
    ("t30", "train", [*T, "--config", "RUNS_FOLDER"], 2, "RUNS_FOLDER is a folder"),
    ("own-train-devices-0", "train", [*T, "--trainer.devices", "0"], 2, "devices"),
    ("own-train-accelerator-tpu", "train", [*T, "--trainer.accelerator", "tpu"], 2, "torch_xla"),
    ("own-train-precision-13", "train", [*T, "--trainer.precision", "13"], 2, "13"),
    ("own-train-strategy", "train", [*T, "--trainer.strategy", "bogus"], 2, "bogus"),
    ("own-train-val-check-interval", "train", [*T, "--trainer.val_check_interval", "5.0"], 2, "val_check_interval (5)"),
    ("own-train-unknown-transmission", "train", [*T, Q, "NoSuchTransmission"], 2, "NoSuchTransmission"),
    ("own-train-batch-size-abc", "train", [*T, "--data.batch_size", "abc"], 2, "abc"),
    ("own-train-decoder-width-0", "train", [*T, "--model.decoder_width", "0"], 2, "decoder_width"),
    ("own-train-config-binary", "train", [*T, "--config", "BINARY_FILE"], 2, "BINARY_FILE: not a text file"),
    ("own-train-ckpt-empty", "train", [*T, "--ckpt_path", "EMPTY_FILE"], 2, "EMPTY_FILE: an empty file"),
    ("own-train-ckpt-zip", "train", [*T, "--ckpt_path", "ZIP_FILE"], 2, "ZIP_FILE: a zip archive but not a PyTorch checkpoint"),
    ("own-train-ckpt-flipped", "train", [*T, "--ckpt_path", "FLIPPED_CKPT"], 2, "FLIPPED_CKPT: a PyTorch archive whose entry"),
    ("own-train-ckpt-weights", "train", [*T, "--ckpt_path", "WEIGHTS_FILE"], 2,
     "WEIGHTS_FILE: a PyTorch file but not a checkpoint"),
    ("own-train-ckpt-onnx", "train", [*T, "--ckpt_path", "ONNX_FILE"], 2, "ONNX_FILE: not a PyTorch archive"),
    ("own-train-ckpt-run-folder", "train", [*T, "--ckpt_path", "GOOD_CHECKPOINTS"], 2, "did you mean"),
    ("own-train-resume-split-points", "train", [*T, "--model.split_points", "[layer2,layer3]", "--ckpt_path", "GOOD_CKPT"],
     2, "split_points=['layer3'] (configured: ['layer2', 'layer3'])"),
    ("own-train-resume-tasks", "train", [*T, "--model.tasks", "[segmentation]", "--ckpt_path", "GOOD_CKPT"], 2,
     "tasks=['segmentation', 'disparity', 'reconstruction'] (configured: ['segmentation'])"),
    ("own-train-resume-transmission", "train", [*T, Q, "BottleneckTransmission", "--ckpt_path", "GOOD_CKPT"], 2,
     "transmission="),
    ("own-train-root-is-a-file", "train", [*TINY, "--trainer.default_root_dir", "TEXT_FILE"], 2,
     "--trainer.default_root_dir TEXT_FILE is a file"),
    ("own-train-root-below-a-file", "train", [*TINY, "--trainer.default_root_dir", "TEXT_FILE/runs"], 2,
     "TEXT_FILE is a file, not a folder"),
    ("own-train-resume-weights-only", "train", [*T, "--ckpt_path", "NO_TRAINING_STATE"], 2, "no training state"),
    ("e01", "export", ["--ckpt", "MISSING.ckpt", "--out", "OUT"], 2, "MISSING.ckpt: no such file"),
    ("e02", "export", ["--ckpt", "GOOD_CHECKPOINTS", "--out", "OUT"], 2, "is a folder"),
    ("e03", "export", ["--ckpt", "TEXT_FILE", "--out", "OUT"], 2, "TEXT_FILE: not a PyTorch archive"),
    ("e04", "export", ["--ckpt", "TRUNCATED_CKPT", "--out", "OUT"], 2, "truncated or corrupt"),
    ("e05", "export", ["--ckpt", "GOOD_CKPT", "--out", "TEXT_FILE/sub"], 2, "TEXT_FILE is a file, not a folder"),
    ("e06", "export", ["--ckpt", "GOOD_CKPT", "--out", "TEXT_FILE"], 2, "TEXT_FILE is a file; expected a folder"),
    ("e07", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--height", "100"], 2, "100"),
    ("e08", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--codec", "jpeg:quality=200"], 2, "200"),
    ("own-export-codec-option-typo", "export", ["--ckpt", "BAF_CKPT", "--out", "OUT", "--codec", "jpeg:qualty=90"],
     2, "did you mean 'quality'"),
    ("e10", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--demo", "MISSING.png"], 2, "MISSING.png: no such file"),
    ("e11", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--opset", "3"], 2, "opset=3"),
    ("own-export-samples-0", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--samples", "0"], 2, "--samples 0"),
    ("own-export-mean-images", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--mean-images", "-1"], 2, "-1"),
    ("own-export-width-0", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--width", "0"], 2, "--width 0"),
    ("own-export-codec-unknown", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--codec", "jpg"], 2, "jpg"),
    ("own-export-codec-empty", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--codec", ""], 2, "''"),
    ("own-export-no-out", "export", ["--ckpt", "GOOD_CKPT"], 2, "--out"),
    ("own-export-unknown-option", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--bogus"], 2, "--bogus"),
    ("own-export-height-abc", "export", ["--ckpt", "GOOD_CKPT", "--out", "OUT", "--height", "abc"], 2, "abc"),
    ("own-export-empty-ckpt", "export", ["--ckpt", "EMPTY_FILE", "--out", "OUT"], 2, "an empty file"),
    ("v01", "evaluate", ["curves", "--ckpt", "BAF_CKPT"], 2, "is a BaFPredictor checkpoint"),
    ("v02", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "2", "--out", "OUT", "--codecs", "jpeg:quality=200"],
     2, "200"),
    ("v03", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "2", "--out", "OUT", "--codecs", "jpeg2000:bpe=-1"],
     2, "-1"),
    ("v04", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "2", "--out", "OUT", "--codecs", "nosuchcodec"],
     2, "nosuchcodec"),
    ("v05", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "2", "--out", "OUT", "--codecs", "jpeg:qualty=90"],
     2, "did you mean 'quality'"),
    ("v07", "evaluate", [], 2, "command"),
    ("v08", "evaluate", ["curvs", "--ckpt", "GOOD_CKPT"], 2, "did you mean 'curves'"),
    ("v09", "evaluate", ["baf", "--ckpt", "GOOD_CKPT", "--images", "2", "--out", "OUT"], 2, "is a MultiTaskCI checkpoint"),
    ("v10", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "0", "--out", "OUT"], 2, "--images 0"),
    ("v11", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "-1", "--out", "OUT"], 2, "--images -1"),
    ("v12", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "2", "--num-test", "0", "--out", "OUT"], 2,
     "--num-test 0"),
    ("v13", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "2", "--out", "OUT", "--codecs", "jpeg:quality=abc"],
     2, "abc"),
    ("v14", "evaluate", ["allocate", "--ckpt", "GOOD_CKPT", "--budgets", "-5", "--out", "OUT"], 2, "--budgets -5"),
    ("v15", "evaluate", ["allocate", "--ckpt", "GOOD_CKPT", "--budgets", "6", "--fit-fraction", "1.5", "--out", "OUT"], 2,
     "--fit-fraction 1.5"),
    ("v16", "evaluate", ["allocate", "--ckpt", "TWO_STREAM_CKPT", "--budgets", "6", "--weights", "1", "2", "3", "--out", "OUT"],
     2, "--weights 1 2 3"),
    ("v17", "evaluate", ["bdrate", "--anchor", "GOOD_CKPT", "--test", "MISSING.ckpt", "--out", "OUT"], 2,
     "--test MISSING.ckpt: no such file"),
    ("v18", "evaluate", ["curves", "--ckpt", "TRUNCATED_CKPT", "--out", "OUT"], 2, "truncated or corrupt"),
    ("own-evaluate-one-stream", "evaluate", ["allocate", "--ckpt", "GOOD_CKPT", "--budgets", "6", "--out", "OUT"], 2,
     "one stream (layer3)"),
    ("own-evaluate-min-overlap", "evaluate", ["bdrate", "--anchor", "GOOD_CKPT", "--test", "GOOD_CKPT", "--min-overlap",
                                              "2", "--out", "OUT"], 2, "--min-overlap 2"),
    ("own-evaluate-method", "evaluate", ["bdrate", "--anchor", "GOOD_CKPT", "--test", "GOOD_CKPT", "--method", "cubik"],
     2, "did you mean 'cubic'"),
    ("own-evaluate-anchor-missing", "evaluate", ["bdrate", "--anchor", "MISSING.ckpt", "--test", "GOOD_CKPT"], 2,
     "--anchor MISSING.ckpt"),
    ("own-evaluate-anchor-list-folder", "evaluate", ["bdrate", "--anchor", "GOOD_CKPT,GOOD_CHECKPOINTS", "--test",
                                                     "GOOD_CKPT"], 2, "is a folder"),
    ("own-evaluate-tuples-0", "evaluate", ["allocate", "--ckpt", "GOOD_CKPT", "--budgets", "6", "--tuples", "0"], 2,
     "--tuples 0"),
    ("own-evaluate-refine-negative", "evaluate", ["allocate", "--ckpt", "GOOD_CKPT", "--budgets", "6",
                                                  "--refine-tuples", "-1"], 2, "--refine-tuples -1"),
    ("own-evaluate-paper-protocol", "evaluate", ["allocate", "--ckpt", "GOOD_CKPT", "--budgets", "6", "--protocol",
                                                 "paper", "--tuples", "5"], 2, "--tuples 5"),
    ("own-evaluate-out-file", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--out", "TEXT_FILE"], 2,
     "TEXT_FILE is a file"),
    ("own-evaluate-baf-codec", "evaluate", ["baf", "--ckpt", "BAF_CKPT", "--codecs", "pngg", "--out", "OUT"], 2, "pngg"),
    ("own-evaluate-baf-missing", "evaluate", ["baf", "--ckpt", "BAF_CKPT", "MISSING.ckpt", "--out", "OUT"], 2,
     "MISSING.ckpt"),
    ("own-evaluate-images-abc", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--images", "abc"], 2, "abc"),
    ("own-evaluate-codec-list-option", "evaluate", ["curves", "--ckpt", "GOOD_CKPT", "--out", "OUT", "--codecs",
                                                    "jpeg2000:quantizer=a,b"], 2, "quantizer"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint, baf_checkpoint, two_task_checkpoint) -> dict[str, Path]:
    """The probe's files: good checkpoints, and the bad ones a careless user passes instead."""
    root = tmp_path_factory.mktemp("bad_inputs")
    good = root / "good" / "checkpoints" / "last.ckpt"  # a copy, so that its run folder can be watched
    good.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, good)
    shutil.copy(tiny_checkpoint.parents[1] / "config.yaml", good.parents[1] / "config.yaml")
    data = good.read_bytes()
    paths = {"GOOD_CKPT": good, "GOOD_CHECKPOINTS": good.parent, "GOOD_RUN": good.parents[1],
             "BAF_CKPT": baf_checkpoint, "TWO_STREAM_CKPT": two_task_checkpoint}
    for name, content in {"TEXT_FILE": b"a text file\n", "EMPTY_FILE": b"", "BINARY_FILE": b"\xff\xfe\x00bin",
                          "TRUNCATED_CKPT": data[: len(data) // 4], "ONNX_FILE": b"\x08\x07\x12\x07pytorch",
                          "MALFORMED.yaml": b"trainer:\n  max_epochs: 3\n model: [\n"}.items():
        (paths.setdefault(name, root / name)).write_bytes(content)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (paths.setdefault("FLIPPED_CKPT", root / "FLIPPED_CKPT")).write_bytes(bytes(flipped))
    with zipfile.ZipFile(paths.setdefault("ZIP_FILE", root / "ZIP_FILE"), "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    torch.save({"layer.weight": torch.zeros(2)}, paths.setdefault("WEIGHTS_FILE", root / "WEIGHTS_FILE"))
    state = torch.load(good, map_location="cpu", weights_only=True)
    torch.save({"state_dict": state["state_dict"], "hyper_parameters": state["hyper_parameters"]},
               paths.setdefault("NO_TRAINING_STATE", root / "NO_TRAINING_STATE"))
    (paths.setdefault("RUNS_FOLDER", root / "RUNS_FOLDER")).mkdir()
    return paths


def _snapshot(*folders: Path) -> set[Path]:
    return {p for folder in folders for p in folder.rglob("*")}


@pytest.mark.parametrize(("entry", "argv", "status", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_one_line_naming_the_value_and_nothing_is_written(files, tmp_path, entry, argv, status, names):
    main, name = ENTRY_POINTS[entry]
    shown = {**{k: str(v) for k, v in files.items()}, "RUNS": str(tmp_path / "runs"), "OUT": str(tmp_path / "out")}

    keys = re.compile("|".join(sorted(map(re.escape, shown), key=len, reverse=True)))

    def substitute(text: str) -> str:  # in one pass: RUNS_FOLDER is not RUNS + _FOLDER
        return keys.sub(lambda m: shown[m.group(0)], text)

    watched = (files["GOOD_RUN"], files["BAF_CKPT"].parents[1], files["TWO_STREAM_CKPT"].parents[1])
    before = _snapshot(*watched)
    proc = run_entry_point(main, name, [substitute(str(a)) for a in argv], tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert substitute(names) in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()
    assert _snapshot(*watched) == before


def test_a_test_model_that_is_the_anchor_is_said_so(files, tmp_path):
    good = files["GOOD_CKPT"]
    proc = run_entry_point(evaluate_main, "evaluate.py", ["bdrate", "--anchor", good, "--test", good, "--images", "2",
                                                          "--out", tmp_path / "out"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"note: --test {good} is the anchor itself; its BD-rate is 0 by definition" in proc.stdout


@pytest.mark.parametrize("argv", [["train.py", "--help"], ["export.py", "--help"], ["evaluate.py", "curves", "--help"]],
                         ids=["train", "export", "evaluate"])
def test_help_prints_no_warning_and_imports_no_codec_library(argv, tmp_path):
    probe = ("import runpy, sys; sys.argv = {argv!r}\n"
             "try:\n    runpy.run_path({script!r}, run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('compressai', 'onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    script = str(ROOT / argv[0])
    proc = subprocess.run([sys.executable, "-c", probe.format(argv=argv, script=script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    loaded = proc.stdout.strip().splitlines()[-1]
    assert loaded == ("['torch']" if argv[0] == "train.py" else "[]"), loaded
