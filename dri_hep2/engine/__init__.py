"""The engine: the Caffe that `make setup` built and how every Caffe of the toolkit runs.

`caffe_env` finds pycaffe and the `caffe` binary and picks the device; `environment` computes
the variables a Caffe process gets (BLAS kernel, OpenMP wait policy) in one place, which
`caffe_env` calls for the CLI and pycaffe alike; the OpenBLAS kernel check is `blas_cpu` (the
CPU's flags, the kernels ranked), `blas_probe` (the SGEMM probe, in a subprocess),
`blas_verdict` (the decision and its cache), `blas_rates` (SGEMM GFLOP/s) and `blas_report`
(`make doctor`'s rows); `caffe_log` parses Caffe's glog output. Imports run one way:
caffe_env -> environment -> blas_verdict -> blas_cpu, blas_probe; only the package root's
facts below.
"""
