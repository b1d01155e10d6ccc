"""The OpenBLAS kernel check (issue 14, part 1), through the OpenBLAS that libcaffe loads.

Every probe runs real SGEMMs of that library in a subprocess and compares them with numpy
float64; the end-to-end tests start the real `caffe` binary and read the kernel OpenBLAS
announces (OPENBLAS_VERBOSE=2 prints "Core: <name>" when the library loads).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from dri_hep2.engine import blas_cpu, blas_probe, blas_verdict, caffe_env, environment

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}


@pytest.fixture(scope="module")
def library():
    lib = blas_verdict.caffe_library(caffe_env.caffe_home())
    if lib is None:
        pytest.skip("no libcaffe: run 'make setup'")
    path = blas_verdict.openblas_of(lib)
    if path is None:
        pytest.skip(f"{lib} does not load libopenblas (another BLAS): no kernel to choose")
    return path


@pytest.fixture(scope="module")
def flags():
    return blas_cpu.cpu_info()[1]


def caffe_core(env: dict[str, str]) -> str:
    """The kernel OpenBLAS announces inside the `caffe` binary run with `env`."""
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    full.update(env, OPENBLAS_VERBOSE="2")
    out = subprocess.run([str(caffe_env.caffe_binary()), "--version"], capture_output=True,
                         text=True, env=full)
    m = re.search(r"Core: (\w+)", out.stdout + out.stderr)
    assert m, f"OpenBLAS printed no core: {out.stdout + out.stderr}"
    return m.group(1)


def test_kernels_follow_the_cpu_flags():
    assert blas_cpu.best_kernel(AVX512 | {"avx512_bf16", "avx2", "fma", "avx"}) == "Cooperlake"
    assert blas_cpu.best_kernel(AVX512 | {"avx2", "fma", "avx"}) == "SkylakeX"
    assert blas_cpu.best_kernel({"avx2", "fma", "avx"}) == "Haswell"
    assert blas_cpu.best_kernel({"avx2", "avx"}) == "Sandybridge"      # no FMA: no Haswell kernel
    assert blas_cpu.best_kernel({"sse2", "sse3"}) is None
    # The case: Prescott on an AVX-512 CPU wants every better class, best first.
    assert blas_cpu.candidates_for(AVX512 | {"avx2", "fma", "avx"}, "Prescott") == \
        ["SkylakeX", "Haswell", "Sandybridge"]
    assert blas_cpu.candidates_for(AVX512 | {"avx2", "fma", "avx"}, "SkylakeX") == []
    assert blas_cpu.candidates_for(AVX512 | {"avx2", "fma", "avx"}, "Haswell") == ["SkylakeX"]


def test_own_kernel_matches_numpy_float64(library):
    p = blas_probe.probe(library, None, repeats=1)
    assert p.failure is None, p.failure
    assert 0 <= p.error_ratio <= 1.0
    assert p.core in blas_cpu.KERNEL_CLASS


def test_best_kernel_for_this_cpu_is_verified(library, flags):
    best = blas_cpu.best_kernel(flags)
    if best is None:
        pytest.skip("this CPU has no AVX: OpenBLAS has no better kernel to offer")
    p = blas_probe.probe(library, best, repeats=1)
    assert p.ok, p.failure
    assert p.core == best and p.error_ratio <= 1.0


def test_unknown_kernel_name_is_rejected(library):
    p = blas_probe.probe(library, "NoSuchCore", repeats=1)
    assert not p.ok
    assert "not taken" in p.failure


def test_a_fallback_to_prescott_is_fixed(library, flags):
    """Decide as on the issue's Xeon, where OpenBLAS picked Prescott by itself: the choice must
    be the best class this CPU has, verified and faster, and `caffe` must run it."""
    best = blas_cpu.best_kernel(flags)
    if best is None:
        pytest.skip("this CPU has no AVX: nothing better than Prescott")
    prescott = blas_probe.probe(library, "Prescott", repeats=2)
    assert prescott.ok, prescott.failure
    prescott.requested = None           # as if OpenBLAS had chosen it on its own
    v = blas_verdict.decide(library, detected=prescott)
    assert v.chosen is not None, v.reason
    assert blas_cpu.kernel_class(v.chosen) == blas_cpu.kernel_class(best)
    chosen = next(p for p in v.candidates if p.requested == v.chosen)
    assert chosen.gflops >= blas_verdict.MIN_SPEEDUP * prescott.gflops
    assert caffe_core(v.env()) == v.chosen


def test_caffe_runs_the_best_class_this_cpu_supports(library, flags, tmp_path, monkeypatch):
    """What the toolkit sets for every Caffe (blas_env) puts Caffe on the best class."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    core = caffe_core(blas_verdict.blas_env(caffe_env.caffe_home()))
    assert blas_cpu.kernel_class(core) == blas_cpu.kernel_class(blas_cpu.best_kernel(flags))


def test_verdict_is_cached_per_cpu_and_library(library, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = blas_verdict.cached_verdict(library)
    assert not first.from_cache
    files = list((tmp_path / "dri-hep2" / "blas").glob("*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = blas_verdict.cached_verdict(library)
    assert second.from_cache and second.chosen == first.chosen
    assert second.detected.core == first.detected.core
    assert files[0].stat().st_mtime_ns == stamp
    # Another CPU (other flags) is another key: the verdict is not reused there.
    model, cpu_flags = blas_cpu.cpu_info()
    assert blas_verdict.cache_key(library, model, cpu_flags - {"avx2"}) != files[0].stem


def test_the_users_own_coretype_wins(library, monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert blas_verdict.blas_env(caffe_env.caffe_home()) == {}


def test_engine_env_adds_the_kernel_and_passive_openmp_but_keeps_the_users(library, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    home = caffe_env.caffe_home()
    wanted = environment.caffe_env_vars(home, {})
    assert wanted["OMP_WAIT_POLICY"] == "PASSIVE"
    assert {k: v for k, v in wanted.items() if k != "OMP_WAIT_POLICY"} == \
        blas_verdict.blas_env(home)
    assert "OMP_WAIT_POLICY" not in environment.caffe_env_vars(home, {"OMP_WAIT_POLICY": "ACTIVE"})
    assert "OMP_WAIT_POLICY" not in environment.caffe_env_vars(home, {"GOMP_SPINCOUNT": "0"})


# --- the decision and its cache, without Caffe: the probe replaced by its results -----------
def _fake_probes(monkeypatch, results: dict[str | None, blas_probe.Probe]) -> list[str | None]:
    """Make blas_verdict's probe answer from `results`; returns the kernels asked for."""
    asked: list[str | None] = []

    def fake(library, coretype, repeats=3, timeout=None):
        asked.append(coretype)
        return results[coretype]

    monkeypatch.setattr(blas_verdict, "probe", fake)
    return asked


def _passed(requested, gflops):
    return blas_probe.Probe(requested=requested, core=requested or "Prescott", error_ratio=0.2,
                            gflops=gflops)


AVX512_CPU = AVX512 | {"avx2", "fma", "avx"}


def test_a_slower_candidate_is_not_forced_and_the_reason_says_so(monkeypatch, tmp_path):
    asked = _fake_probes(monkeypatch, {None: _passed(None, 100.0),
                                       "SkylakeX": _passed("SkylakeX", 105.0),
                                       "Haswell": _passed("Haswell", 90.0),
                                       "Sandybridge": _passed("Sandybridge", 50.0)})
    v = blas_verdict.decide(tmp_path / "libopenblas.so", AVX512_CPU, "a CPU")
    assert asked == [None, "SkylakeX", "Haswell", "Sandybridge"]
    assert v.chosen is None and v.env() == {}
    assert v.reason == ("SkylakeX passed but ran 105 GFLOP/s against 100: not forced; "
                        "Haswell passed but ran 90 GFLOP/s against 100: not forced; "
                        "Sandybridge passed but ran 50 GFLOP/s against 100: not forced")


def test_the_first_faster_candidate_is_chosen(monkeypatch, tmp_path):
    failed = blas_probe.Probe(requested="SkylakeX", failure="probe exited -4: SIGILL")
    _fake_probes(monkeypatch, {None: _passed(None, 60.0), "SkylakeX": failed,
                               "Haswell": _passed("Haswell", 200.0)})
    v = blas_verdict.decide(tmp_path / "libopenblas.so", AVX512_CPU, "a CPU")
    assert v.chosen == "Haswell" and v.env() == {"OPENBLAS_CORETYPE": "Haswell"}
    assert v.reason.startswith("OpenBLAS picks Prescott on this CPU; Haswell verified")
    assert [p.requested for p in v.candidates] == ["SkylakeX", "Haswell"]


def test_no_candidate_passing_names_each_failure(monkeypatch, tmp_path):
    _fake_probes(monkeypatch, {None: _passed(None, 60.0),
                               **{k: blas_probe.Probe(requested=k, failure=f"{k} broke")
                                  for k in ("SkylakeX", "Haswell", "Sandybridge")}})
    v = blas_verdict.decide(tmp_path / "libopenblas.so", AVX512_CPU, "a CPU")
    assert v.chosen is None
    assert v.reason == ("no better kernel passed the check: SkylakeX: SkylakeX broke; "
                        "Haswell: Haswell broke; Sandybridge: Sandybridge broke")


def test_the_cached_verdict_round_trips_in_its_format(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    library = tmp_path / "libopenblas.so"
    library.write_bytes(b"not a library")
    _fake_probes(monkeypatch, {None: _passed(None, 60.0), "SkylakeX": _passed("SkylakeX", 200.0)})
    monkeypatch.setattr(blas_verdict, "cpu_info", lambda: ("a CPU", frozenset(AVX512)))
    first = blas_verdict.cached_verdict(library)
    assert not first.from_cache and first.chosen == "SkylakeX"
    [path] = (tmp_path / "cache" / "dri-hep2" / "blas").iterdir()
    data = json.loads(path.read_text())
    assert set(data) == {"library", "cpu_model", "best_for_cpu", "detected", "candidates",
                         "chosen", "reason", "version"}
    assert data["version"] == blas_verdict.VERDICT_VERSION and data["chosen"] == "SkylakeX"
    monkeypatch.setattr(blas_verdict, "probe", None)     # a second decision would fail
    second = blas_verdict.cached_verdict(library)
    assert second.from_cache and second.chosen == "SkylakeX"
    assert second.detected == first.detected and second.candidates == first.candidates


def _loaded_openblas(command: list[str]) -> set[str]:
    """Every libopenblas the dynamic loader initialises while `command` starts (LD_DEBUG)."""
    out = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, LD_DEBUG="libs"))
    return {os.path.realpath(m) for m in
            re.findall(r"calling init: (\S*libopenblas\S*)", out.stdout + out.stderr)}


def test_caffe_and_pycaffe_load_the_build_s_one_openblas(library):
    """Issue 20: the BLAS named in the build's stamp (CAFFE_BLAS) is the one the `caffe` binary
    and pycaffe load, whatever the system's libopenblas.so.0 alternative points at, and only
    that one; doctor's row says how it threads."""
    from dri_hep2.engine import blas_report

    home = caffe_env.caffe_home()
    stamp = dict(line.split("=", 1) for line in (home / "BUILD_OK").read_text().splitlines())
    variant = stamp.get("blas")
    if variant is None:
        pytest.skip("a build from before CAFFE_BLAS (no blas= in BUILD_OK): rebuild with make setup")
    assert library.parent.name == variant, (library, variant)
    binary = _loaded_openblas([str(caffe_env.caffe_binary()), "--version"])
    python = _loaded_openblas([sys.executable, "-c", "import caffe"])
    assert binary == python == {str(library)}
    threads = blas_report.threading(library)
    assert threads.startswith("OpenMP" if variant == "openblas-openmp" else "pthreads"), threads
