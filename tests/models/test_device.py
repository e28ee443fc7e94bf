"""Inference devices: names checked against this machine, with a clear error."""

from __future__ import annotations

import pytest
import torch

from posereg.models.device import inference_device

NO_CUDA = not torch.cuda.is_available()


def test_cpu_is_always_there():
    assert inference_device("cpu") == torch.device("cpu")
    assert inference_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu0", "", "cuda:x", "xla"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match="--device"):
        inference_device(name)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_refused(name):
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        inference_device(name)


@pytest.mark.skipif(NO_CUDA, reason="needs CUDA")
def test_a_gpu_index_beyond_the_machine_is_refused():
    assert inference_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match="only"):
        inference_device(f"cuda:{torch.cuda.device_count()}")
