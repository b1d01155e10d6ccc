"""The engine itself: the Caffe that `make setup` built runs, from Python and from its CLI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import lmdb
import numpy as np
import pytest
from caffe import layers as L

from dri_hep2.engine import caffe_env
from dri_hep2.folders import REPO_ROOT

REPO = REPO_ROOT


def _tiny_net(caffe, path, batch=4):
    """conv -> PReLU -> fc -> softmax loss on Input blobs, written as a prototxt."""
    n = caffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[batch, 1, 8, 8]), dict(dim=[batch])], ntop=2)
    n.conv = L.Convolution(n.data, num_output=3, kernel_size=3, weight_filler=dict(type="xavier"))
    n.act = L.PReLU(n.conv)
    n.fc = L.InnerProduct(n.act, num_output=6, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    path.write_text(str(n.to_proto()))
    return path


def test_pycaffe_is_the_toolkits_build(caffe):
    assert os.path.realpath(caffe.__file__).startswith(os.path.realpath(caffe_env.caffe_home()))
    info = caffe_env.build_info()
    assert info["version"] == "1.0.0+git20180821.99bd997-8"
    assert info["mode"] in ("CPU", "GPU (CUDA)")


def test_netspec_forward_backward_matches_finite_differences(caffe, tmp_path):
    """Backward through conv/PReLU/fc/softmax agrees with a numerical derivative of forward."""
    net = caffe.Net(str(_tiny_net(caffe, tmp_path / "tiny.prototxt")), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(size=net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = [0, 1, 2, 5]
    loss = float(net.forward()["loss"])
    assert np.isfinite(loss) and loss > 0
    net.backward()
    weights = net.params["conv"][0]
    analytic = weights.diff.flat[4]
    eps = 1e-3
    weights.data.flat[4] += eps
    up = float(net.forward()["loss"])
    weights.data.flat[4] -= 2 * eps
    down = float(net.forward()["loss"])
    numeric = (up - down) / (2 * eps)
    assert analytic != 0
    assert numeric == pytest.approx(analytic, rel=2e-2, abs=1e-5)


def test_caffe_cli_times_a_net(tmp_path):
    model = _tiny_net(caffe_env.use_device(), tmp_path / "tiny.prototxt")
    out = subprocess.run([str(caffe_env.caffe_binary()), "time", "-model", str(model),
                          "-iterations", "3"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Average Forward-Backward" in out.stderr


def test_data_layer_reads_python_written_datums(caffe, tmp_path):
    """LMDB of Datum records written here comes back through Caffe's Data layer, in key order."""
    from caffe.proto import caffe_pb2

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 1, 6, 7), dtype=np.uint8)
    labels = [3, 0, 5, 1, 2]
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        # Written out of key order: the Data layer must return them sorted by key.
        for i in (4, 2, 0, 3, 1):
            datum = caffe_pb2.Datum(channels=1, height=6, width=7,
                                    data=images[i].tobytes(), label=labels[i])
            txn.put(f"{i:03d}".encode(), datum.SerializeToString())
    env.close()
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=str(tmp_path / "db"), backend=caffe.params.Data.LMDB,
                             batch_size=5, ntop=2)
    (tmp_path / "read.prototxt").write_text(str(n.to_proto()))
    net = caffe.Net(str(tmp_path / "read.prototxt"), caffe.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, images.astype(np.float32))
    np.testing.assert_array_equal(net.blobs["label"].data, labels)


def test_second_setup_rebuilds_nothing():
    # Its own process group: should the script start a build after all, the timeout kills
    # the whole build (make, the compilers), not just bash, which would leave them running.
    proc = subprocess.Popen(["bash", str(REPO / "tools" / "build_caffe.sh")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHON": sys.executable}, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("build_caffe.sh did not answer 'already built' within 120 s: it rebuilt")
    assert proc.returncode == 0, stderr
    assert "already built" in stdout


def test_doctor_reports_the_engine():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "doctor.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for field in ("Caffe mode", "BLAS", "numpy", "google.protobuf", "lmdb", "cv2"):
        assert field in out.stdout
