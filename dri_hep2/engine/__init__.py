"""The engine: the Caffe that `make setup` built and how every Caffe of the toolkit runs.

`caffe_env` finds pycaffe and the `caffe` binary and picks the device; `environment` computes
the variables a Caffe process gets (BLAS kernel, OpenMP wait policy) in one place; `blas`
checks the OpenBLAS kernel in use; `caffe_log` parses Caffe's glog output. Imports only the
package root's facts.
"""
