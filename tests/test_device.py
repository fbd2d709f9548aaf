"""nn/device.py: the one --device resolver (auto, cpu, cuda, cuda:N checked against the GPUs)."""

import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.nn.device import check_device_name, resolve_device


def _gpus(monkeypatch, n):
    """Pretend torch sees ``n`` CUDA GPUs (none: CUDA unavailable)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


@pytest.mark.parametrize("name", ["foo", "cuda0", "gpu", "gpu0", "cuda:", "cuda:x", "CPU",
                                  "cuda:-1", " cpu"])
def test_malformed_names_are_refused_in_one_line(name):
    for check in (check_device_name, resolve_device):
        with pytest.raises(BadInputError, match="expected auto, cpu, cuda or cuda:N") as e:
            check(name)
        assert "\n" not in str(e.value) and repr(name) in str(e.value)
    assert str(resolve_device("cpu")) == "cpu"


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_refused(monkeypatch):
    _gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", index=3) == torch.device("cpu")
    for name in ("cuda", "cuda:0", "cuda:7"):
        with pytest.raises(BadInputError, match=f"--device {name}: no CUDA GPU"):
            resolve_device(name)


def test_gpu_index_is_checked_against_the_gpus_torch_sees(monkeypatch):
    _gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    # A distributed run's LOCAL_RANK picks the GPU of a bare cuda (or auto), not of cuda:N.
    assert resolve_device("cuda", index=1) == torch.device("cuda:1")
    assert resolve_device("auto", index=1) == torch.device("cuda:1")
    assert resolve_device("cuda:0", index=1) == torch.device("cuda:0")
    with pytest.raises(BadInputError, match=r"--device cuda:7: torch sees 2 CUDA GPU\(s\), "
                                            r"cuda:0 to cuda:1"):
        resolve_device("cuda:7")
    with pytest.raises(BadInputError, match="cuda:2, this process's LOCAL_RANK"):
        resolve_device("cuda", index=2)


def test_cuda_7_on_a_cpu_machine_is_one_line(monkeypatch):
    _gpus(monkeypatch, 0)
    with pytest.raises(BadInputError) as e:
        resolve_device("cuda:7")
    assert str(e.value) == ("--device cuda:7: no CUDA GPU is visible to torch here; use --device "
                            "cpu or auto.")
