"""Checkpoints written before the transmission interface load into today's classes with identical outputs
— see tests/data/legacy/README.md for how they were written."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cilight.ci_models import BottleneckTransmission, MultiTaskCI, QLayerTransmission
from cilight.ci_models.checkpoints import load_task_model, read_checkpoint
from cilight.codecs import CodecError
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
    # the tables come from the checkpoint (entropy_tables): the frame the old codec wrote (container version 1,
    # CompressAI's rANS) holds the symbols today's codec writes with constriction's range coder (version 2)
    codec = h.transmissions[0].own_codec()
    features = h.encoder(REFERENCE["images"])[0]
    old = bytes(REFERENCE["outputs"]["hyperprior"]["frame"].tolist())
    with pytest.raises(CodecError, match="version 1 learned stream was range-coded with CompressAI"):
        codec.decode(old)
    header, symbols = codec.decode_symbols(codec.encode(features[0]))
    assert old[4] == 1 and header.version == 2
    assert old_symbols(codec, old) == {k: v.tolist() for k, v in symbols.items()}


def old_symbols(codec, frame: bytes) -> dict[str, list]:
    """The symbols of a version-1 learned frame, read with CompressAI's rANS decoder (what wrote it) and the
    rows today's model computes: the payload layout (digest, z's LEB128 length, the rows check, the strings)
    did not change."""
    from cilight.codecs import container
    from cilight.codecs.entropy import compressai_module
    from cilight.codecs.learned import _read_varint

    ans = compressai_module("compressai.ans")
    _, _, payload = container.parse(frame)
    first, head = _read_varint(payload, 4)  # the length of z's string (LEB128), after the 4-byte tables digest
    head += 2  # the 16-bit check of the y rows
    strings = {"z": payload[head : head + first], "y": payload[head + first :]}
    shapes = codec.model.latent_shapes(*container.parse(frame)[0].shape[1:])
    decoded = {}
    for name in codec.coding_order:
        rows = codec.model.rows(name, decoded, (1, *shapes[name]), dict(codec.tables))[0]
        tables = codec.tables[name]
        values = ans.RansDecoder().decode_with_indexes(strings[name], rows.reshape(-1).tolist(),
                                                       tables.quantized_cdf.tolist(), tables.cdf_length.tolist(),
                                                       tables.offset.tolist())
        decoded[name] = np.asarray(values, np.int32).reshape(shapes[name])[None]
    return {k: v[0].tolist() for k, v in decoded.items()}


def test_a_checkpoint_mixing_both_layouts_is_one_clear_error(tmp_path):
    state = read_checkpoint(LEGACY / "qlayer.ckpt")
    state["hyper_parameters"]["transmission"] = "QLayerTransmission"
    with pytest.raises(ConfigError, match="mix transmission="):
        MultiTaskCI.upgrade_checkpoint(state)


def test_todays_checkpoints_pass_unchanged():
    state = {"hyper_parameters": {"transmission": "QLayerTransmission"}, "state_dict": {}}
    assert MultiTaskCI.upgrade_checkpoint(state) is state
