"""The DRI HEp-2 reproduction toolkit (Li & Shen, DLMIA 2017) on real Caffe.

The package's folders are its architecture, in layers; a module imports only from its own
layer and the layers below it (tests/test_layers.py holds the rule, `LAYERS` below is its
data; docs/design.md draws it):

    model/        using a trained run: predict, ONNX export, explain, package
    experiment/   runs and grids of runs: train, evaluate, report, series, cv, sweeps
    net/          the nets and solvers as Caffe prototxt (Table 1, Fig. 2, section 2.3)
    data/         the cells: readers, split, augmentation, LMDBs (Table 2)
    engine/       finding and running Caffe: build, BLAS kernel, OpenMP, its log
    (root)        facts: what the paper says (paper), our choices (ledger), class lists,
                  schedules, errors, atomic writes, folder types, the command-line helpers
"""

# Lowest first. "" is the package root: its plain modules.
LAYERS = ("", "engine", "data", "net", "experiment", "model")
