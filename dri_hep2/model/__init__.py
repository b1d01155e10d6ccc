"""Using a trained run (docs/using.md): `make predict` with Caffe or onnxruntime, the ONNX
export checked against pycaffe, gradient and Grad-CAM explanations, the one-archive package.
The top layer: it may import every other. `onnx_model` and `predict` import no pycaffe at
import time, so the ONNX backend runs without Caffe.
"""
