"""``blursynth export-model``: a trained generator (any architecture) as an ONNX file, checked
against torch through onnxruntime before it is written."""

from __future__ import annotations

import io
from pathlib import Path

import click

#: The exported graph's input and output names.
INPUT_NAME, OUTPUT_NAME = "blurred", "deblurred"
#: Largest difference allowed between onnxruntime's output and torch's, on [0, 1] images.
CHECK_TOLERANCE = 1e-4
#: The ONNX opset written (onnxruntime 1.16 and later run it).
OPSET = 17


def zero_one(generator):
    """The module exported: the generator between [0, 1] images, clamped, as ``deblur`` writes
    them (the generator itself works in [-1, 1])."""
    import torch

    class ZeroOne(torch.nn.Module):
        def __init__(self, g):
            super().__init__()
            self.g = g

        def forward(self, x):
            return ((self.g(x * 2 - 1) + 1) / 2).clamp(0, 1)

    return ZeroOne(generator).eval()


def check_size(multiple: int) -> tuple:
    """The (H, W) of the check image: not square and not the traced size, so the dynamic axes
    are exercised, multiples of the generator's ``multiple``."""
    m = int(multiple)
    return (max(48 // m, 3) * m, max(80 // m, 5) * m)


def export_onnx(model, onnx_path, *, opset: int = OPSET, check: bool = True) -> dict:
    """Export the generator of run ``model`` to ``onnx_path``; return what was written.

    The graph takes ``blurred`` (float32 ``(N, 3, H, W)`` RGB in [0, 1], N, H, W free, H and W
    multiples of the run's ``multiple``) and gives ``deblurred`` (the same shape, in [0, 1]): the
    whole image at once (tiling is ``deblur``'s; an exported network with global statistics
    computes them over the image it is given). Metadata: ``blursynth.arch``,
    ``blursynth.config`` (JSON), ``blursynth.multiple``, ``blursynth.range``.

    With ``check`` (the default) onnxruntime runs the exported graph on a seeded random image
    and its output must equal torch's within :data:`CHECK_TOLERANCE`; nothing is written
    otherwise.

    Raises
    ------
    BadInputError
        Not a run, unwritable ``onnx_path``, or ``check`` without onnxruntime installed.
    RuntimeFailure
        The graph onnxruntime ran differs from torch's output.
    """
    import json

    import numpy as np
    import torch

    from ..dataset.outputs import write_output_file
    from ..errors import BadInputError, RuntimeFailure
    from ..train.checkpoints import load_generator
    from ..train.tiling import multiple_of

    out = Path(onnx_path)
    if out.suffix.lower() != ".onnx":
        raise BadInputError(f"--onnx {out}: expected a file name ending in .onnx, such as "
                            f"{out.with_suffix('.onnx')}.")
    if out.is_dir():
        raise BadInputError(f"--onnx {out}: is a folder; expected a file name such as "
                            f"{out / 'model.onnx'}.")
    if not out.parent.exists():
        raise BadInputError(f"--onnx {out}: folder {out.parent} does not exist; make it first.")
    ort = None
    if check:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BadInputError("export-model checks the file with onnxruntime, which is not "
                                "installed; pip install onnxruntime, or pass --no-check.") from None
    gen, ckpt = load_generator(model, "cpu")
    multiple = multiple_of(gen)
    net = zero_one(gen)
    side = 4 * multiple
    example = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    axes = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns about InstanceNorm's training flag and shape inference;
        # the check below is what says whether the graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=int(opset),
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    data = buf.getvalue()
    arch = ckpt.get("arch") or "deblurgan"
    meta = {"blursynth.arch": arch, "blursynth.config": json.dumps(ckpt["model_config"]),
            "blursynth.multiple": str(multiple), "blursynth.range": "[0, 1]",
            "blursynth.step": str(ckpt.get("step"))}
    try:
        import onnx

        proto = onnx.load_from_string(data)
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        data = proto.SerializeToString()
    except ImportError:  # the graph is complete without its metadata
        pass
    report = {"onnx": str(out), "arch": arch, "config": ckpt["model_config"].get("name"),
              "multiple": multiple, "bytes": len(data), "checked": False}
    if check:
        h, w = check_size(multiple)
        x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = net(x).numpy()
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        if not diff <= CHECK_TOLERANCE:
            raise RuntimeFailure(
                f"{model}: the exported graph gives other numbers than torch on a {h}x{w} image "
                f"(largest difference {diff:.3g}, allowed {CHECK_TOLERANCE}); nothing written. "
                "Report this with the run's arch and config.")
        report.update(checked=True, max_abs_diff=diff, check_shape=[2, 3, h, w])
    write_output_file(out, data, option="--onnx")
    return report


@click.command("export-model")
@click.argument("model", type=click.Path())
@click.option("--onnx", "onnx_path", type=click.Path(), required=True,
              help="ONNX file to write (input 'blurred', output 'deblurred': float32 N x 3 x H "
                   "x W RGB in [0, 1]).")
@click.option("--opset", type=click.IntRange(13, None), default=OPSET, show_default=True,
              help="ONNX opset version.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the file through onnxruntime and compare with torch before writing it.")
def export_model(model, onnx_path, opset, check):
    """Write a trained run's generator (any --arch) as an ONNX file.

    \b
    Example:
      blursynth export-model run/ --onnx model.onnx
    """
    report = export_onnx(model, onnx_path, opset=opset, check=check)
    msg = (f"wrote {report['onnx']} ({report['arch']} {report['config']}, "
           f"{report['bytes'] / 1e6:.1f} MB; sides a multiple of {report['multiple']})")
    if report["checked"]:
        msg += (f"; onnxruntime matches torch within {report['max_abs_diff']:.2g} on a "
                f"{report['check_shape'][2]}x{report['check_shape'][3]} image")
    click.echo(msg)
