"""Exports ready to deploy: what graphnet knows carried in the file (types of every tensor, docs,
metadata, names people read), the deployment rewrites (batch norm folded, zero initial states
left out, constants folded), each switched off on its own with the same outputs in onnxruntime,
onnxslim finding nothing left to remove on any zoo spec, and float16 within its tolerance."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

import graphnet as gn
from graphnet.backends.onnx_export import ExportOptions

SPECS = Path(__file__).resolve().parents[2] / "specs"
ALL = sorted(p.stem for p in SPECS.glob("*.yaml"))
# Small variants: the same graphs with small images, classifiers, widths and depths.
IMAGE = {"H": 32, "W": 32, "classes": 10}
SMALL = {
    **{n: IMAGE for n in ("vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101",
                          "resnet152", "resnext50_32x4d", "mobilenet_v1", "mobilenet_v2", "googlenet",
                          "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0")},
    **{n: {"H": 64, "W": 96, "classes": 10} for n in ("alexnet", "zfnet")},
    "transformer": {"vocab": 50, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "transformer_encoder": {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "bert_base": {"vocab": 100, "max_positions": 16, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "vit_b16": {"H": 32, "W": 48, "classes": 10, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    # TinyLlama-1.1B's configuration: 1.1 G params to make and export, 175 s of this test alone
    "llama_tiny": {"vocab": 100, "d": 32, "d_ff": 64, "heads": 4, "kv_heads": 2, "layers": 2},
}


def _load(name: str) -> gn.Network:
    dims = SMALL.get(name, {})
    spec = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    return gn.load(SPECS / f"{name}.yaml", {k: v for k, v in dims.items() if k in spec.get("dims", {})})


def _weights(net: gn.Network) -> dict[str, np.ndarray]:
    """Cheap weights with no zero and no one (onnxslim drops an add of zeros or a product with
    ones, which says nothing of the export), positive (batch norm's variance), and no two tensors
    or slices alike (it would tie them and merge what reads them)."""
    out = {}
    for i, (k, p) in enumerate(net.graph.params.items()):
        shape = tuple(d.value for d in p.type.shape)
        ramp = (np.arange(int(np.prod(shape)), dtype=np.float64) % 101) * 1e-3 + 0.05 + 1e-5 * i
        out[k] = ramp.reshape(shape).astype(p.type.dtype)
    return out


def _random_weights(net: gn.Network, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, w in net.init_weights(seed).items():
        if w.dtype.kind == "f":
            w = (w + rng.uniform(0.05, 0.2, w.shape)).astype(w.dtype)   # non-zero biases, positive variances
        out[k] = w
    return out


def _run(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


# -- what the file carries ------------------------------------------------------------------------

def test_every_intermediate_tensor_has_its_symbolic_type():
    net = _load("transformer_encoder")
    model = net.to_onnx(net.init_weights(0))
    outputs = {o.name for o in model.graph.output}
    produced = [o for n in model.graph.node for o in n.output if o not in outputs]
    infos = {v.name: v for v in model.graph.value_info}
    assert produced and set(produced) <= set(infos)
    for name in produced:
        dims = [d.dim_param or d.dim_value for d in infos[name].type.tensor_type.shape.dim]
        assert infos[name].type.tensor_type.elem_type and dims, name
    # the attention scores are [B, heads, T, T]: B and T by name, where onnx's inference loses T
    scores = [v for k, v in infos.items() if k.endswith("attention.scores")]
    assert [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in scores] == [["B", 4, "T", "T"]] * 2
    onnx.checker.check_model(model, full_check=True)


def test_docs_producer_and_metadata_come_from_the_spec():
    path = SPECS / "bert_base.yaml"
    net = _load("bert_base")
    model = net.to_onnx(_weights(net))
    spec = yaml.safe_load(path.read_text())
    assert model.doc_string == model.graph.doc_string == spec["doc"]
    assert model.producer_name == "graphnet" and model.producer_version == gn.__version__
    assert {i.name: i.doc_string for i in model.graph.input} == {k: v["doc"] for k, v in spec["inputs"].items()}
    props = {p.key: p.value for p in model.metadata_props}
    assert props["graphnet.spec"] == spec["name"]
    assert props["graphnet.source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # BertModel's count at vocab 100, 16 positions, d 32, d_ff 64, 2 layers (test_specs.py has the full one)
    d, ff = 32, 64
    assert int(props["graphnet.params"]) == (100 + 16 + 2) * d + 2 * d + 2 * (4 * (d * d + d) + 2 * d * ff + ff + d
                                                                           + 4 * d) + d * d + d
    assert props["graphnet.free_dims"] == "B, T"
    assert props["graphnet.dim.T"] == "read from input_ids[1], token_type_ids[1], attention_mask[1]"


def test_nodes_are_named_by_path_and_initializers_by_param():
    net = gn.load(SPECS / "resnet18.yaml", IMAGE)
    weights = _random_weights(net)
    model = net.to_onnx(weights)
    names = [n.name for n in model.graph.node]
    assert names[:4] == ["conv1", "relu", "maxpool", "layer1.0.conv1"] and names[-1] == "fc"
    assert all("#" not in n and "/" not in n for n in names)
    # every initializer is a param, by its name: the conv weights (batch norm folded in), the
    # batch norms' biases as the convs' biases, and the classifier's weight as torch stores it
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(stored) <= set(net.graph.params)
    fc = model.graph.node[-1]
    assert (fc.op_type, list(fc.input), fc.attribute[0].name, fc.attribute[0].i) == \
        ("Gemm", ["flatten", "fc.weight", "fc.bias"], "transB", 1)
    np.testing.assert_array_equal(stored["fc.weight"], weights["fc.weight"])


def test_onnxruntime_errors_are_still_located_at_the_node():
    from graphnet.backends.onnx_export import source_node
    net = gn.load(SPECS / "resnet18.yaml", IMAGE)
    for onnx_name, node in [("layer1.0.conv1", "layer1.0.conv1.conv"), ("fc", "fc.add"),
                            ("layer1.0.add", "layer1.0.add"), ("layer1.0.conv1#Conv/2", "layer1.0.conv1.conv"),
                            ("nothing#Conv", None)]:
        found = source_node(net.graph, onnx_name)
        assert (found[1].name if found else None) == node


# -- the deployment rewrites ----------------------------------------------------------------------

OFF = {"fold_batch_norm": "BatchNormalization", "drop_zero_states": None, "fold_constants": "Split"}


@pytest.mark.parametrize("name, option", [("mobilenet_v2", "fold_batch_norm"), ("lstm", "drop_zero_states"),
                                          ("birnn", "drop_zero_states"), ("transformer_encoder", "fold_constants")])
def test_each_rewrite_keeps_the_outputs_and_can_be_switched_off(name, option):
    net = _load(name)
    weights = _random_weights(net)
    on = net.to_onnx(weights)
    off = net.to_onnx(weights, options=ExportOptions(**{option: False}))
    ops_on, ops_off = [n.op_type for n in on.graph.node], [n.op_type for n in off.graph.node]
    assert len(ops_on) < len(ops_off)
    if OFF[option]:
        assert OFF[option] in ops_off and OFF[option] not in ops_on
    else:   # the initial states: a recurrent op reads them only when they are kept
        assert all(len(n.input) <= 4 for n in on.graph.node if n.op_type in ("LSTM", "GRU", "RNN"))
        assert any(len(n.input) > 5 for n in off.graph.node if n.op_type in ("LSTM", "GRU", "RNN"))
    inputs = net.random_inputs({"B": 2, "T": 3})
    for a, b in zip(_run(on, inputs), _run(off, inputs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("name", ALL)
def test_onnxslim_finds_nothing_to_remove(name):
    import onnxslim   # the test extra installs it
    net = _load(name)
    model = net.to_onnx(_weights(net))
    slim = onnxslim.slim(model)
    ops = sorted(n.op_type for n in model.graph.node)
    assert sorted(n.op_type for n in slim.graph.node) == ops


# -- float16 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, io", [("mobilenet_v3_small", "float32"), ("bert_base", "float32"), ("lstm", "float16"),
                                      ("vit_b16", "float16")])
def test_float16_runs_within_half_precision_of_float32(name, io):
    net = _load(name)
    weights = net.init_weights(1)
    full = net.to_onnx(weights)
    half = net.to_onnx(weights, options=ExportOptions(dtype="float16", io_dtype=io))
    stored = {t.data_type for t in half.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT,
                                                                               onnx.TensorProto.FLOAT16)}
    assert stored == {onnx.TensorProto.FLOAT16}
    onnx.checker.check_model(half, full_check=True)
    inputs = net.random_inputs({"B": 2, "T": 5})
    if name == "bert_base":
        inputs["input_ids"] = np.random.default_rng(0).integers(0, 100, (2, 5))
    cast = {k: v.astype(np.float16) if v.dtype == np.float32 and io == "float16" else v for k, v in inputs.items()}
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    assert {i.type for i in session.get_inputs() if "float" in i.type} <= {f"tensor({io.replace('32', '')})"}
    for a, b in zip(session.run(None, cast), _run(full, inputs)):
        assert a.dtype == np.dtype(io)
        scale = float(np.abs(b).max())
        np.testing.assert_allclose(a.astype(np.float32), b, rtol=2e-2, atol=2e-2 * max(scale, 1.0))
