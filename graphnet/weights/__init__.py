"""Weights: made from each param's init scheme, or read from the files people have and checked
against the graph by qualified param name.

- formats.py: `load_weights` and `save_weights`, the format picked by the name;
  npz.py, safetensors_file.py, pytorch.py and hf_folder.py read (and write) one format each.
- tensors.py: WeightFile, what every reader hands over: dtypes and shapes from the header, values
  read only when asked for; the rule that only regular files are read.
- check.py: the report and the check (matched, missing, unexpected, mis-shaped, mis-typed);
  casts.py: which dtype casts are made (only those that change no value).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..init import param_rng
from .check import IGNORED_SUFFIX, WeightsReport, check_weights, format_report, report_json, weights_report
from .formats import load_weights, save_weights, weight_writer
from .npz import load_npz, read_npz, save_npz
from .tensors import TensorInfo, WeightFile

__all__ = ["IGNORED_SUFFIX", "TensorInfo", "WeightFile", "WeightsReport", "check_weights", "format_report",
           "init_weights", "load_npz", "load_weights", "read_npz", "report_json", "save_npz", "save_weights",
           "weight_writer", "weights_report"]


def init_weights(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    out = {}
    for name, p in graph.params.items():
        shape = tuple(d.value for d in p.type.shape)
        out[name] = p.init.sample(shape, param_rng(seed, name)).astype(p.type.dtype)
    return out
