"""The edge and cloud halves of a trained split model as plain tensor-in/tensor-out modules.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2, Fig. 4.3: the *encoder* (the client model with its
quantizer attached) runs on the device, the *decoder* (dequantizer + server model) in the cloud;
the codec in between (postencoder/predecoder) is not part of either. What each stream puts on the
wire is its transmission's (:mod:`cilight.ci_models.transmission`), so these modules only flatten
and regroup tensors:

::

    EdgeHalf:   image [B,3,H,W] ─► model.edge ─► for each stream s, each wire field f of its transmission:
                                                 f_s (codes_s, minimum_s, maximum_s; symbols_z_s, symbols_y_s; …)
    CloudHalf:  the cloud fields of every stream ─► model.cloud ─► one output per task
    CodingGraph: a transmission's graph both sides run around the entropy coder (a hyperprior's
                 symbols_z_s ─► rows_y_s), every stream's together

The tensor names and their order are the wire format's (:func:`wire_tensor_names`), so the files
and the runtimes agree on them without any other convention.
"""

from __future__ import annotations

from torch import Tensor, nn


def wire_tensor_names(model, fields: str = "wire") -> list[str]:
    """``<field>_<split>`` of every stream in split-point order: the edge outputs (``fields="wire"``)
    or the cloud inputs (``"cloud"``)."""
    return [f"{field}_{split}" for split, t in zip(model.split_points, model.transmissions)
            for field in (t.wire_fields if fields == "wire" else t.receiving_fields)]


class EdgeHalf(nn.Module):
    """Image → the wire tensors of every stream (outputs in :func:`wire_tensor_names` order)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for stream in self.model.edge(image) for t in stream)


class CloudHalf(nn.Module):
    """The received tensors of every stream → the task outputs, in the model's task order."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.counts = [len(t.receiving_fields) for t in model.transmissions]

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        streams, start = [], 0
        for count in self.counts:
            streams.append(tuple(tensors[start : start + count]))
            start += count
        outputs = self.model.cloud(streams)
        return tuple(outputs[task.name] for task in self.model.tasks)


class CodingGraph(nn.Module):
    """The graphs named ``name`` of every stream's transmission (``Transmission.coding_graphs``), run
    together: their inputs and outputs in split-point order."""

    def __init__(self, model, name: str, height: int, width: int) -> None:
        super().__init__()
        graphs = [t.coding_graphs(*w.shape[1:]).get(name)
                  for t, w in zip(model.transmissions, model.wires(height, width).values())]
        self.splits = [s for s, g in zip(model.split_points, graphs) if g is not None]
        self.graphs = nn.ModuleList(g[0] for g in graphs if g is not None)
        self.inputs = [f"{f}_{s}" for s, g in zip(model.split_points, graphs) if g is not None for f in g[1]]
        self.outputs = [f"{f}_{s}" for s, g in zip(model.split_points, graphs) if g is not None for f in g[2]]
        self.counts = [len(g[1]) for g in graphs if g is not None]

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        out, start = [], 0
        for graph, count in zip(self.graphs, self.counts):
            result = graph(*tensors[start : start + count])
            out += list(result) if isinstance(result, tuple) else [result]
            start += count
        return tuple(out)


def coding_graph_names(model, height: int, width: int) -> list[str]:
    """The names of every coding graph any stream's transmission has (``hyper``), in first-seen order."""
    names: dict[str, None] = {}
    for t, w in zip(model.transmissions, model.wires(height, width).values()):
        names.update(dict.fromkeys(t.coding_graphs(*w.shape[1:])))
    return list(names)


__all__ = ["CloudHalf", "CodingGraph", "EdgeHalf", "coding_graph_names", "wire_tensor_names"]
