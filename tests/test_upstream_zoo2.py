"""The networks issue 12 added to the zoo, each against its upstream module: torchvision's own
constructors (and Hugging Face's LlamaForCausalLM for llama_tiny). As in
tests/test_upstream_weights.py, whose helpers these tests use: at full size the module's
state_dict names and shapes are exactly the spec's params; the module's
constant tensors are redrawn, its state_dict saved with torch.save and as .safetensors, and
`graphnet run --weights` on NumPy (both files) and onnxruntime, and `graphnet export --weights` in
onnxruntime, give the module's eval-mode outputs within 1e-4 of their scale. The size-agnostic
CNNs run on small, non-square images to keep the file quick.

Params and MACs against torchvision's published figures (its weights' meta num_params and _ops)
are in tests/test_specs.py with the rest of the zoo; the full-size export check is there too.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_upstream_weights import _check_cli, _library, _redraw_constants, _same_names, torch

# spec -> (the constructor's name and keyword arguments, the batch and image size of the output check)
TORCHVISION = {
    # 39x45: every ceil_mode pool rounds up somewhere
    "squeezenet1_0": ("squeezenet1_0", {}, (2, 39, 45)),
    "inception_v3": ("inception_v3", {"aux_logits": False, "transform_input": False, "init_weights": False}, (1, 75, 91)),
    "efficientnet_v2_s": ("efficientnet_v2_s", {}, (2, 64, 48)),
    "regnet_x_400mf": ("regnet_x_400mf", {}, (2, 64, 48)),
    "mnasnet1_0": ("mnasnet1_0", {}, (2, 64, 48)),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", {}, (2, 64, 48)),
    # 64x48: the maps of 16x12, 8x6, 4x3 and 2x2 are padded to whole windows, shifted along one
    # axis, both or neither, and 4x3 is padded by a column before its patch merging
    "swin_t": ("swin_t", {}, (2, 64, 48)),
}


@pytest.mark.parametrize("spec", list(TORCHVISION))
def test_torchvision_state_dict_loads_by_name(tmp_path, spec):
    models = _library("torchvision").models
    name, kwargs, (batch, h, w) = TORCHVISION[spec]
    torch.manual_seed(0)
    # made once, on the CPU: regnet's width rule reads tensors back, which the meta device refuses,
    # and these modules are small
    module = getattr(models, name)(weights=None, **kwargs)
    assert _same_names(spec, module) > 0
    module = _redraw_constants(module, seed=1)
    image = np.random.default_rng(2).standard_normal((batch, 3, h, w)).astype(np.float32)
    with torch.no_grad():
        logits = module(torch.from_numpy(image)).numpy()
    _check_cli(tmp_path, spec, {"H": h, "W": w}, module, {"image": image}, {"logits": logits})


# -- Hugging Face -----------------------------------------------------------------------------------

# A small LlamaConfig of the spec's graph (the spec's dims are TinyLlama-1.1B's): 2 layers, width 32,
# 4 query heads sharing 2 key/value heads, which is what makes the grouped-query path matter.
LLAMA_SMALL = {"vocab": 100, "d": 32, "d_ff": 64, "heads": 4, "kv_heads": 2, "layers": 2}


def _llama_config(transformers, vocab, d, d_ff, heads, kv_heads, layers):
    return transformers.LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=d_ff, num_hidden_layers=layers,
                                    num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=1e-5,
                                    rope_theta=10000.0, max_position_embeddings=64, tie_word_embeddings=False,
                                    attn_implementation="eager")


def test_llama_tiny_loads_hugging_face_llama_for_causal_lm(tmp_path):
    transformers = _library("transformers")
    tiny = {"vocab": 32000, "d": 2048, "d_ff": 5632, "heads": 32, "kv_heads": 4, "layers": 22}  # TinyLlama-1.1B
    with torch.device("meta"):
        assert _same_names("llama_tiny", transformers.LlamaForCausalLM(_llama_config(transformers, **tiny))) == 2 + 22 * 9 + 1
    torch.manual_seed(6)
    module = _redraw_constants(transformers.LlamaForCausalLM(_llama_config(transformers, **LLAMA_SMALL)), seed=7)
    ids = np.random.default_rng(8).integers(0, LLAMA_SMALL["vocab"], (2, 7)).astype(np.int64)
    with torch.no_grad():
        logits = module(torch.from_numpy(ids)).logits.numpy()
    _check_cli(tmp_path, "llama_tiny", LLAMA_SMALL, module, {"input_ids": ids}, {"logits": logits})
