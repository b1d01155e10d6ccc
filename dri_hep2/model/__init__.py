"""Using a trained run (docs/using.md). The top layer: it may import every other.

    make predict   predict (the command) over inputs (the cells given), backends (Caffe or
                   onnxruntime), specimens (one call per specimen), prediction_metrics and
                   prediction_folder (OUT's files)
    make export    onnx_export (the command and model.json) over onnx_convert (a net to one
                   ONNX model), onnx_layers (one converter per Caffe layer type) and onnx_check
                   (onnxruntime against pycaffe); onnx_model reads and runs an export
    make explain   explain
    make package   package

`onnx_model`, `backends` and `predict` with the modules it imports import no pycaffe at import
time, so the ONNX backend runs without Caffe.
"""
