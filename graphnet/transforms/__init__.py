"""Graph IR -> Graph IR passes that sit between the IR and the back ends: what more than one back end
uses (recurrent-cell fusion, for the NumPy plan and the ONNX export) and what the passes share."""
