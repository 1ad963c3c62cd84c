"""Checkpoints written before the transmission interface load into today's classes with identical outputs
— see tests/data/legacy/README.md for how they were written."""

from pathlib import Path

import pytest
import torch

from cilight.ci_models import BottleneckTransmission, MultiTaskCI, QLayerTransmission
from cilight.ci_models.checkpoints import load_task_model, read_checkpoint
from cilight.errors import ConfigError

LEGACY = Path(__file__).parent / "data" / "legacy"
REFERENCE = torch.load(LEGACY / "outputs.pt", weights_only=True)


@pytest.fixture(autouse=True)
def threads_of_the_reference():
    """outputs.pt was written with two intra-op threads (the default on the 2-core machine that ran
    make_legacy.py); a convolution's float sums, and so bit-identical outputs, depend on the thread count
    (the test session runs with one, see conftest.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("loader", [load_task_model, MultiTaskCI.load_from_checkpoint], ids=["cilight", "lightning"])
@pytest.mark.parametrize(("name", "kind"), [("qlayer", QLayerTransmission), ("hyperprior", BottleneckTransmission)])
def test_a_legacy_checkpoint_loads_with_identical_outputs(name, kind, loader):
    model = loader(LEGACY / f"{name}.ckpt").eval()
    assert isinstance(model.transmissions[0], kind)
    with torch.no_grad():
        outputs = model(REFERENCE["images"])
    expected = REFERENCE["outputs"][name]
    for task in ("segmentation", "disparity"):
        assert torch.equal(outputs[task], expected[task]), task


def test_legacy_options_become_the_transmission_and_its_state():
    q = load_task_model(LEGACY / "qlayer.ckpt")
    assert q.hparams["transmission"]["init_args"] == {
        "bits": 6, "rate_loss": "proxy_bits", "compressibility_weight": 1.0, "rate_weighting": "learned",
        "rate_features": "normalized", "rate_bpe_range": [0.1, 2.0], "rate_step": None, "codec_noise": "proxy",
        "codec_noise_probability": 0.5}
    h = load_task_model(LEGACY / "hyperprior.ckpt")
    assert h.hparams["transmission"]["init_args"] == {"prior": "hyperprior", "channels": 8, "rate_lambda": 1e-4,
                                                      "entropy_lr": 1e-2}
    # the tables come from the checkpoint (entropy_tables), and code the frame the old codec wrote
    codec = h.transmissions[0].own_codec()
    features = h.encoder(REFERENCE["images"])[0]
    assert codec.encode(features[0]) == bytes(REFERENCE["outputs"]["hyperprior"]["frame"].tolist())


def test_a_checkpoint_mixing_both_layouts_is_one_clear_error(tmp_path):
    state = read_checkpoint(LEGACY / "qlayer.ckpt")
    state["hyper_parameters"]["transmission"] = "QLayerTransmission"
    with pytest.raises(ConfigError, match="mix transmission="):
        MultiTaskCI.upgrade_checkpoint(state)


def test_todays_checkpoints_pass_unchanged():
    state = {"hyper_parameters": {"transmission": "QLayerTransmission"}, "state_dict": {}}
    assert MultiTaskCI.upgrade_checkpoint(state) is state
