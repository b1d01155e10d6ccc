"""Runs and experiments: one run folder (`RunDir`) trained with the `caffe train` CLI,
evaluated, reported; seed series, the Table 3(a) ablation, cross-validation and sweeps over
grids of runs; the committed prototxt/ and solver/ files; the GPU check kit. Imports every
layer below (root, engine, data, net), never `model`.
"""
