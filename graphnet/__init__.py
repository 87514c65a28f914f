"""graphnet: neural networks as YAML dataflow graphs of primitive ops.

    import graphnet as gn
    net = gn.load("specs/resnet18.yaml")
    print(net.summary())
    y = net.run({"image": x}, weights=net.init_weights(seed=0))
    net.export_onnx("resnet18.onnx")
    w = gn.load_weights("resnet18.safetensors")      # or .npz, .pt, a Hugging Face folder
"""

from . import openblas  # noqa: F401  (first: it must run before NumPy loads)
from .errors import SpecError
from .network import Network, import_onnx, load


def __getattr__(name: str):
    # the weights package is imported when first asked for: `graphnet validate` never needs it
    if name in ("load_weights", "save_weights"):
        from . import weights
        return getattr(weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Network", "SpecError", "import_onnx", "load", "load_weights", "save_weights"]
__version__ = "0.1.0"
