"""The mixed-model engines under other CPUs' kernels, emulated on this machine.

numpy picks its SIMD kernels at run time (NPY_DISABLE_CPU_FEATURES turns groups off) and
OpenBLAS its BLAS kernels (OPENBLAS_CORETYPE). Different kernels round differently, which
changes an optimizer's path; the answer must not change. Each combination runs a few designs
of tests/models/engine_checks.py in a subprocess, emulating an older CPU than this one (a kernel the
CPU lacks would die with an illegal instruction, so a combination whose instructions the CPU
does not have is skipped), and checks what the sweep checks: a certified optimum at least as
high as the best reference, and lme4's estimates. The whole sweep over every design is
`test_every_design_under_every_combination` (slow, --runslow).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
LLF_ATOL = 1e-6
LME4_RTOL = {"estimate_rel": 1e-6, "se_rel": 1e-6, "variance_rel": 1e-6}

# name: (OPENBLAS_CORETYPE, numpy SIMD groups turned off, CPU flags the kernels need)
COMBINATIONS = {
    "avx512-skylakex": ("SkylakeX", [], {"avx512f", "avx512cd", "avx512bw", "avx512dq"}),
    "avx2-haswell": ("Haswell", ["X86_V4", "AVX512_ICL", "AVX512_SPR"], {"avx2", "fma"}),
    "avx2-zen": ("Zen", ["X86_V4", "AVX512_ICL", "AVX512_SPR"], {"avx2", "fma"}),
    "avx-sandybridge": ("Sandybridge", ["X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR"], {"avx"}),
    "sse42-nehalem": ("Nehalem", ["X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR"], {"sse4_2"}),
}
DEFAULT_COMBINATIONS = ["avx2-haswell", "avx-sandybridge", "sse42-nehalem"]
# A few designs per combination: the ML design that stopped on the correlation boundary with
# AVX2 kernels, a nested design, lme4's tightly converged reference, the therapist model.
FEW_DESIGNS = [
    "lmm:client_correlated/ml/default",
    "lmm:nested_independent/reml/default3",
    "lme4:growth_negcorr/ML",
    "therapist:boundary",
    "separation:logistic",
    "separation:cox",
]


def cpu_flags() -> set[str] | None:
    """The CPU's instruction-set flags (Linux x86-64), else None."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def numpy_groups() -> set[str]:
    from numpy._core._multiarray_umath import __cpu_dispatch__

    return set(__cpu_dispatch__)


def run_combination(name: str, designs: list[str], timeout: float) -> tuple[dict, list[dict]]:
    """Run `designs` under combination `name` in a subprocess: (kernels in use, results)."""
    core, disabled, needed = COMBINATIONS[name]
    flags = cpu_flags()
    if flags is None:
        pytest.skip("CPU kernels are emulated on Linux x86-64 only")
    if not needed <= flags:
        pytest.skip(f"this CPU lacks {sorted(needed - flags)} for {name}")
    env = dict(os.environ)
    env["OPENBLAS_CORETYPE"] = core
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(sorted(set(disabled) & numpy_groups()))
    env["OPENBLAS_NUM_THREADS"] = "1"
    process = subprocess.run(
        [sys.executable, str(HERE / "engine_checks.py"), *designs],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    return lines[0]["kernels"], lines[1:]


def assert_answers(name: str, kernels: dict, results: list[dict]) -> None:
    core, disabled, _ = COMBINATIONS[name]
    assert not set(disabled) & set(kernels["numpy_simd"]), kernels
    expected = {"Zen": "Haswell"}.get(core, core)  # OpenBLAS runs Zen on its Haswell kernels
    assert all(c == expected for c in kernels["blas_cores"].values()), kernels
    for r in results:
        if "reported" in r:  # a fit without a maximum must say so
            assert r["reported"], r
            continue
        assert r["converged"], r
        assert r["shortfall"] <= LLF_ATOL, r
        for key, tolerance in LME4_RTOL.items():
            assert r.get(key, 0.0) <= tolerance, r


@pytest.mark.parametrize("name", DEFAULT_COMBINATIONS)
def test_a_few_designs_under_emulated_cpu_kernels(name: str) -> None:
    kernels, results = run_combination(name, FEW_DESIGNS, timeout=300)
    assert [r["design"] for r in results] == FEW_DESIGNS
    assert_answers(name, kernels, results)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_every_design_under_every_combination(name: str) -> None:
    from engine_checks import ALL

    kernels, results = run_combination(name, ["all"], timeout=3600)
    assert len(results) == len(ALL)
    assert_answers(name, kernels, results)
    assert np.isfinite([r["shortfall"] for r in results if "shortfall" in r]).all()
