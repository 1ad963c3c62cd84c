"""``python train.py``: one end-to-end process (the run folder), resume, clear errors and the resolved
config in-process through ``main(argv)``, DDP in processes."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import TINY, callbacks_config, train, train_subprocess

from cilight.ci_models import MultiTaskCI
from cilight.cli import summarize_config_error


@pytest.mark.slow
def test_fit_and_test_in_a_process_of_its_own(tiny_run):
    proc, run = tiny_run.proc, tiny_run.folder  # python train.py with TINY, as a user runs it
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    assert list((run / "samples").glob("epoch_*.png"))
    report = json.loads((run / "test_metrics.json").read_text())
    metrics = report["metrics"]
    assert set(report["trivial_baselines"]) == {"segmentation_miou", "disparity_rmse", "disparity_irmse",
                                                "reconstruction_psnr"}
    assert "majority class" in proc.stdout and "mean disparity" in proc.stdout
    assert {"test/segmentation_miou", "test/disparity_rmse", "test/disparity_irmse", "test/reconstruction_psnr"} <= set(metrics)
    assert "test/segmentation_miou" in proc.stdout
    # nothing lands in the working directory except the run root
    assert sorted(p.name for p in tiny_run.cwd.iterdir()) == ["runs"]

    model = MultiTaskCI.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert model.hparams.decoder_width == 16 and model.hparams.num_classes >= 8
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


@pytest.mark.slow
def test_resume_continues_in_its_own_folder(tmp_path, quick_callbacks):
    root = tmp_path / "runs"
    args = [*TINY, "--config", quick_callbacks, "--test_after_fit", "false", "--trainer.default_root_dir", root]
    assert train([*args, "--run_name", "tiny"], tmp_path).returncode == 0
    run = root / "tiny"
    proc = train([*args, "--trainer.max_epochs", "2", "--ckpt_path", run / "checkpoints" / "last.ckpt"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in root.iterdir()) == ["tiny"]  # resumed into its own folder
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model.transmission.compresibility_weight", "0"], "did you mean --model.transmission.compressibility_weight"),
        (["--model.decoder_widht", "8"], "did you mean --model.decoder_width?"),
        (["--data.heigth", "96"], "did you mean --data.height"),
        (["--trainer.max_epochs", "three"], "trainer.max_epochs='three': expected int"),
        (["--data.height", "true"], "data.height='True': expected int"),
        (["--model.split_points", "[layer9]"], "layer9"),
        (["--data.height", "100"], "height=100: expected an integer >= 32 and a multiple of 32"),
        (["--data", "Cityscapes", "--data.root", "/nonexistent/cityscapes"], "/nonexistent/cityscapes"),
        (["--ckpt_path", "/nonexistent/last.ckpt"], "/nonexistent/last.ckpt"),
        (["--model.tasks", "[segmentation,dispartiy]"], "did you mean 'disparity'"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, args, needle):
    proc = train([*args, "--trainer.default_root_dir", str(tmp_path / "runs")], tmp_path)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) <= 3, proc.stderr
    assert needle in proc.stderr
    assert "error" in lines[-1].lower()


def test_summarize_config_error_keeps_the_informative_alternative():
    message = (
        'Parser key "data":\n  Does not validate against any of the Union subtypes\n'
        "  Subtypes: [<class 'LightningDataModule'>, <class 'NoneType'>]\n  Errors:\n"
        "    - Problem with given class_path 'cilight.datamodules.SyntheticStreets':\n"
        '        Parser key "num_val":\n          Expected a <class \'int\'>. Got value: 2.5\n'
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'NestedArg'>\n"
        "  Given value: NestedArg(key='num_val', val='2.5')"
    )
    assert summarize_config_error(message) == "data.num_val='2.5': expected int"
    refused = message.replace('Parser key "num_val":', "Option 'num_vall' is not accepted")
    assert summarize_config_error(refused).startswith("unknown option --data.num_vall; did you mean --data.num_val")
    assert summarize_config_error("unrecognized arguments: --fooo 1", ["--foo", "--bar"]) == (
        "unknown option --fooo; did you mean --foo?"
    )


def test_defaults_and_callbacks_come_from_the_config_file(tmp_path):
    def resolved(*args):
        proc = train([*args, "--print_config"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return yaml.safe_load(proc.stdout)

    default = resolved()
    callbacks = [c["class_path"] for c in default["trainer"]["callbacks"]]
    assert callbacks == ["lightning.pytorch.callbacks.ModelCheckpoint", "cilight.resume.ExactResume",
                         "cilight.evaluation.PredictionGrid", "cilight.evaluation.RateDistortionCallback"]
    assert default["trainer"]["max_epochs"] == 8 and default["seed_everything"] == 0
    # a user's file replaces the list: here without the rate–distortion callback
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"trainer": {"callbacks": default["trainer"]["callbacks"][:-1]}}))
    assert [c["class_path"] for c in resolved("--config", mine)["trainer"]["callbacks"]] == callbacks[:-1]


@pytest.mark.slow
def test_ddp_two_processes(tmp_path):
    """Two CPU processes, two streams, and the rate–distortion callback's barriers on every rank."""
    root = tmp_path / "runs"
    # rank 0 sees 2 of the 4 validation images: one to fit on, one to evaluate on
    config = callbacks_config(tmp_path / "callbacks.yaml", every_n_epochs=1, images=1, eval_images=1, tuples=20,
                              budgets_bpe=[0.4, 0.8], refine_tuples=10)
    args = ["--config", config, *TINY, "--trainer.default_root_dir", str(root), "--run_name", "ddp",
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--model.split_points", "[layer2,layer3]"]
    proc = train_subprocess(args, tmp_path, timeout=400, extra_env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = root / "ddp"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "test_metrics.json").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["ddp"]  # every rank agreed on the run folder
    # only rank 0 ran the sweep and wrote; the sanity check was skipped
    assert sorted(p.name for p in (run / "rate_distortion").iterdir()) == ["epoch_000.json", "epoch_000.png"]
    result = json.loads((run / "rate_distortion" / "epoch_000.json").read_text())
    assert len(result["rows"]) == 2 * 5 and all(r["r2"] is not None for r in result["rows"])  # 4 methods + unrefined
    assert "skipped" not in proc.stderr
