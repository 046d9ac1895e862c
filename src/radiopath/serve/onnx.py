"""ONNX graphs of a bundle and the onnxruntime scorer that uses them.

``radiopath export --onnx`` writes each frozen backbone once (fp32; batch fixed at
``train.extract_batch_size``, as every backbone pass in radiopath; height and width free) and
each fold's head (fp32; any number of patients). ``radiopath predict --runtime onnx`` then
runs the very same scoring path as the torch runtime — preprocessing, padding to the fixed
batch, the fold ensemble (:func:`radiopath.models.inference.ensemble_proba`) — with only the
two network calls swapped: :class:`OnnxBackbone` stands in for the backbone inside
:class:`~radiopath.features.deep.FeatureExtractor`, and :class:`OnnxHead` for a fold model.

Graphs are written with torch's TorchScript-based exporter (``dynamo=False``, opset 17): it
needs no extra package and exports every fusion of the registry; each graph is checked
against torch on random inputs at export time.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radiopath.compute import ComputePlan
from radiopath.errors import ConfigError
from radiopath.features.deep import FeatureExtractor
from radiopath.features.extract import Backbones
from radiopath.modalities import MODALITIES, ImageModality
from radiopath.models.backbones import Backbone
from radiopath.models.model import RadiopathModel
from radiopath.run_config import ModelSpec, RunConfig

OPSET = 17


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "the ONNX runtime needs onnxruntime: pip install 'radiopath[deploy]' (or use --runtime torch)"
        ) from None
    return onnxruntime


def _session(path: str | Path, threads: int = 0) -> Any:
    ort = _ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ConfigError(
            f"{path}: not a readable ONNX graph ({str(exc)[:160]}); export the bundle again"
        ) from None


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, **kwargs: Any) -> None:
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError:
        raise ConfigError("--onnx needs the onnx package: pip install 'radiopath[deploy]'") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its successor
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=OPSET, **kwargs)


# --- backbones ---------------------------------------------------------------------------------------


def export_backbone(backbone: Backbone, path: Path, batch_size: int, size: int) -> float:
    """Write ``backbone`` (fp32, contiguous) as ONNX: ``images`` (batch, 3, H, W) in [0, 1] →
    ``features`` (batch, C); returns the largest difference to torch on a random batch."""
    net = backbone.float().eval().to(memory_format=torch.contiguous_format)
    x = torch.rand(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    _export(net, (x,), path, input_names=["images"], output_names=["features"],
            dynamic_axes={"images": {2: "height", 3: "width"}})  # fmt: skip
    with torch.inference_mode():
        ref = net(x).numpy()
    got = _session(path).run(None, {"images": x.numpy()})[0]
    return float(np.abs(got - ref).max())


class OnnxBackbone(nn.Module):
    """An ONNX backbone graph behind the :class:`Backbone` interface the extractor calls."""

    def __init__(self, path: str | Path, name: str) -> None:
        super().__init__()
        self.session = _session(path)
        self.name = name
        self.num_features = int(self.session.get_outputs()[0].shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.float().contiguous().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {"images": arr})[0])


class OnnxBackbones(Backbones):
    """:class:`Backbones` whose extractors run ONNX graphs (features cached under their own key)."""

    runtime = "onnx"

    def __init__(
        self, cfg: RunConfig, compute: ComputePlan, weights: Mapping[str, str], graphs: Mapping[str, str]
    ) -> None:
        super().__init__(cfg, compute, weights)
        self.graphs = dict(graphs)

    def build(self, backbone: str) -> FeatureExtractor:
        if backbone not in self.graphs:
            raise ConfigError(f"the bundle has no ONNX graph of backbone {backbone}; export it with --onnx")
        net = OnnxBackbone(self.graphs[backbone], backbone)
        plan = ComputePlan(torch.device("cpu"), None, False)
        return FeatureExtractor(
            net, plan, self.cfg.train.extract_batch_size, weights=self.weights_of(backbone)
        )  # type: ignore[arg-type]


# --- heads ---------------------------------------------------------------------------------------------


def head_inputs(spec: ModelSpec) -> list[str]:
    """Input names of a head graph: each modality's array and its mask, in the model's order."""
    return [k for m in spec.modalities for k in (m, f"{m}_mask")]


class _HeadGraph(nn.Module):
    """A fold model with positional inputs (what the exporter traces)."""

    def __init__(self, model: RadiopathModel) -> None:
        super().__init__()
        self.model = model
        self.names = head_inputs(model.spec)

    def forward(self, *arrays: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, arrays, strict=True)))


def example_batch(
    model: RadiopathModel, in_dims: Mapping[str, int], cfg: RunConfig, n: int = 3
) -> dict[str, torch.Tensor]:
    """Random inputs of every shape a head meets: full, partly and wholly missing instances."""
    g = torch.Generator().manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    for m in model.spec.modalities:
        modality = MODALITIES[m]
        if isinstance(modality, ImageModality):
            k = modality.max_instances(cfg)
            out[m] = torch.randn(n, k, in_dims[m], generator=g)
            mask = torch.ones(n, k, dtype=torch.bool)
            mask[1, k // 2 :] = False
            mask[2, 1:] = False
            out[f"{m}_mask"] = mask
        else:
            out[m] = torch.randn(n, in_dims[m], generator=g)
            out[f"{m}_mask"] = torch.tensor([True, True, False][:n])
    return out


def export_head(model: RadiopathModel, path: Path, in_dims: Mapping[str, int], cfg: RunConfig) -> float:
    """Write a fold model (features mode, fp32) as ONNX: modality arrays and masks → ``logit``
    (patients,); returns the largest difference to torch on :func:`example_batch`."""
    model = model.float().eval()
    graph = _HeadGraph(model).eval()
    batch = example_batch(model, in_dims, cfg)
    args = tuple(batch[k] for k in graph.names)
    axes = {k: {0: "patients"} for k in [*graph.names, "logit"]}
    _export(graph, args, path, input_names=graph.names, output_names=["logit"], dynamic_axes=axes)
    with torch.inference_mode():
        ref = graph(*args).numpy()
    got = _session(path, threads=1).run(None, {k: v.numpy() for k, v in batch.items()})[0]
    return float(np.abs(got - ref).max())


class OnnxHead(nn.Module):
    """A fold's ONNX head behind the :class:`RadiopathModel` interface that
    :func:`~radiopath.models.inference.predict_proba` calls (``spec``, ``backbones``, ``forward``)."""

    def __init__(self, spec: ModelSpec, path: str | Path) -> None:
        super().__init__()
        self.spec = spec
        self.backbones = nn.ModuleDict()
        self.backbone_amp: torch.dtype | None = None
        self.session = _session(path, threads=1)
        self.names = head_inputs(spec)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {}
        for k in self.names:
            t = batch[k].cpu()
            t = t.bool() if k.endswith("_mask") else t.float()
            feeds[k] = np.ascontiguousarray(t.numpy())
        return torch.from_numpy(self.session.run(None, feeds)[0])
