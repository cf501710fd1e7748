"""Shared test set-up: hypothesis profiles and automatic skipping of resource markers."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

# No per-test deadlines anywhere (mpmath references are slow by design). Under CI=true the
# derandomized profile makes every run reproducible.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    has_nvcc = shutil.which("nvcc") is not None
    has_gpu = None
    for item in items:
        if "nvcc" in item.keywords and not has_nvcc:
            item.add_marker(pytest.mark.skip(reason="nvcc is not on PATH"))
        if "gpu" in item.keywords:
            if has_gpu is None:
                from verified_lora.kernels import available as gpu_available

                has_gpu = gpu_available()
            if not has_gpu:
                item.add_marker(pytest.mark.skip(reason="no CUDA GPU usable from CuPy"))
