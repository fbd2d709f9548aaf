"""The one ``--device`` resolver: auto, cpu, cuda or cuda:N, checked against the GPUs torch sees."""

from __future__ import annotations

import re
import sys

from ..errors import BadInputError

#: What ``--device`` takes (``cuda:N`` picks one GPU).
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name) -> str:
    """``name`` if it is a ``--device`` value (auto, cpu, cuda, cuda:N); settings call this so a
    malformed name is refused before torch is imported.

    Examples
    --------
    >>> check_device_name("cuda:1")
    'cuda:1'
    """
    name = str(name)
    if not DEVICE_NAME.fullmatch(name):
        raise BadInputError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N.")
    return name


def resolve_device(name, *, index: int | None = None):
    """The torch device ``--device name`` means on this machine.

    ``auto`` is CUDA when torch sees a GPU, else the CPU. A CUDA device that is not there (no
    GPU, or ``cuda:N`` past the GPUs torch sees) is bad input, one line saying which exist.

    Parameters
    ----------
    name : str
        auto, cpu, cuda or cuda:N.
    index : int or None
        The GPU a bare ``cuda`` (or ``auto`` on a GPU machine) means: a distributed run's
        ``LOCAL_RANK``. None leaves it to torch's current device.

    Returns
    -------
    device : torch.device

    Examples
    --------
    >>> resolve_device("cpu").type
    'cpu'
    """
    import torch

    name = check_device_name(name)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise BadInputError(
            f"--device {name}: no CUDA GPU is visible to torch here; use --device cpu or auto.")
    if ":" in name:
        wanted = int(name.split(":")[1])
    elif index is not None:
        wanted = int(index)
    else:
        return torch.device("cuda")
    n = torch.cuda.device_count()
    if wanted >= n:
        shown = name if ":" in name else f"{name} (cuda:{wanted}, this process's LOCAL_RANK)"
        raise BadInputError(
            f"--device {shown}: torch sees {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}; pick one of "
            f"those.")
    return torch.device(f"cuda:{wanted}")


def resolve_device_name(name, *, index: int | None = None) -> str:
    """:func:`resolve_device`'s answer as text (``cpu``, ``cuda``, ``cuda:N``), without importing
    torch where the answer is the CPU whatever torch would say (importing torch is most of a
    second of a CPU command's start-up): ``cpu``, or ``auto`` with a torch built for the CPU
    alone, or on Linux with a torch built for CUDA or ROCm on a machine without the device files
    their GPUs appear as (:func:`_gpu_device_files`).

    Examples
    --------
    >>> resolve_device_name("cpu")
    'cpu'
    """
    name = check_device_name(name)
    if name == "cpu" or (name == "auto" and "torch" not in sys.modules and not _may_see_gpu()):
        return "cpu"
    return str(resolve_device(name, index=index))


def _torch_gpu_builds():
    """The GPU back-ends the installed torch was built for (a subset of cuda, hip, xpu), read from
    its ``torch/version.py`` (a CPU build writes ``cuda = None`` and so on); None if unreadable."""
    import importlib.util
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("torch")
        text = (Path(spec.origin).parent / "version.py").read_text()
    except (AttributeError, TypeError, ValueError, OSError):
        return None
    builds = set()
    for key in ("cuda", "hip", "xpu"):
        line = re.search(rf"^{key}\s*(:[^=\n]*)?=\s*(?P<value>.*?)\s*$", text, re.M)
        if line is None:
            return None
        if line["value"] != "None":
            builds.add(key)
    return builds


def _gpu_device_files(build: str) -> bool:
    """Whether this Linux machine has the files a GPU of ``build`` appears as: for CUDA NVIDIA's
    ``/dev/nvidiaN``, its driver's ``/proc/driver/nvidia`` (loaded before the device files are
    made on first use), a Jetson's ``/dev/nvhost-ctrl-gpu`` or ``/dev/nvgpu``, WSL's ``/dev/dxg``;
    ``/dev/kfd`` for ROCm. A CUDA GPU hidden by ``CUDA_VISIBLE_DEVICES`` set empty or to -1
    counts as none."""
    import glob
    import os

    if build == "cuda":
        if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
            return False
        return bool(glob.glob("/dev/nvidia[0-9]*")) or any(
            os.path.exists(f) for f in ("/proc/driver/nvidia", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu", "/dev/dxg"))
    if build == "hip":
        return os.path.exists("/dev/kfd")
    return True  # XPU: no file tells; torch is asked


def _may_see_gpu() -> bool:
    """Whether torch might see a GPU here: False only where that is certain without importing it."""
    builds = _torch_gpu_builds()
    if builds is None:
        return True
    if builds and not sys.platform.startswith("linux"):
        return True
    return any(_gpu_device_files(b) for b in builds)
