"""Run with the code of commit 3da45a8 (before the transmission interface) to remake the files here."""

import torch

from cilight.ci_models import MultiTaskCI

out = {}
images = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
KEEP = ("state_dict", "hyper_parameters", "entropy_tables", "datamodule_hyper_parameters", "pytorch-lightning_version",
        "epoch", "global_step")
for name in ("q", "h"):
    state = torch.load(f"/tmp/oldckpt/{name}/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    keep = {k: v for k, v in state.items() if k in KEEP}
    file = {"q": "qlayer", "h": "hyperprior"}[name]
    torch.save(keep, f"tests/data/legacy/{file}.ckpt")
    m = MultiTaskCI(**{k: v for k, v in keep["hyper_parameters"].items() if not k.startswith("_")})
    m.load_state_dict(keep["state_dict"])
    m.on_load_checkpoint(keep)
    m.eval()
    with torch.no_grad():
        o = m(images)
    entry = {k: v.clone() for k, v in o.items()}
    if name == "h":
        codec = m.stream_codec(0)
        f = m.features(images)[0]
        entry["frame"] = torch.frombuffer(bytearray(codec.encode(f[0])), dtype=torch.uint8).clone()
    out[file] = entry
    print(file, keep["hyper_parameters"])
torch.save({"images": images, "outputs": out}, "tests/data/legacy/outputs.pt")
