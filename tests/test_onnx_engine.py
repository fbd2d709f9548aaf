"""The learned blurs' ONNX Runtime engine: weights read without torch, graphs that compute what
the torch networks compute, and runs that start without importing torch."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from .conftest import error_line, two_photos


def _perturbed(module, seed: int, std: float = 0.2):
    """``module`` with every parameter redrawn from N(0, std): an untrained BGAN generator is
    nearly the identity, which would hide a wrong layer."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


@pytest.fixture
def bgan_model(tmp_path):
    """A BGAN model folder (the ``small`` config, weights redrawn) as ``bgan train`` writes its
    checkpoint, and the generator."""
    import torch

    from blursynth.bgan.model import CONFIGS, build_bgan
    from blursynth.nn.runs import BGAN_FORMAT
    from blursynth.pairs import bgan

    gen = _perturbed(build_bgan(CONFIGS["small"], seed=0)[0], 1, 0.05)
    folder = tmp_path / "bgan"
    folder.mkdir()
    torch.save({"format": BGAN_FORMAT, "version": 1, "step": 7, "config": gen.config.to_dict(),
                "generator": gen.state_dict(), "optimiser": {"lr": torch.tensor(0.5)}},
               folder / "checkpoint.pt")
    bgan._cached_generator.cache_clear()
    yield folder, gen
    bgan._cached_generator.cache_clear()


# --- reading torch's files without it ------------------------------------------------------------

def test_read_torch_file_gives_what_torch_load_gives(tmp_path):
    import torch

    from blursynth.nn.torchfile import read_torch_file

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"a": base.t(), "b": [torch.tensor(3, dtype=torch.int64), base[1:, 2:4]],
           "c": {"x": torch.zeros(0, 3), "y": torch.tensor([True, False])}, "n": 2.5, "s": "text"}
    torch.save(obj, tmp_path / "f.pt")
    got = read_torch_file(tmp_path / "f.pt")
    want = torch.load(tmp_path / "f.pt", weights_only=True)
    assert got["n"] == 2.5 and got["s"] == "text"
    for g, w in ((got["a"], want["a"]), (got["b"][0], want["b"][0]), (got["b"][1], want["b"][1]),
                 (got["c"]["x"], want["c"]["x"]), (got["c"]["y"], want["c"]["y"])):
        assert g.dtype == w.numpy().dtype and g.shape == tuple(w.shape)
        assert np.array_equal(g, w.numpy())
    assert not got["a"].flags.writeable  # mapped from the file


def test_read_torch_file_refuses_what_it_does_not_know_without_running_it(tmp_path):
    import torch

    from blursynth.nn.torchfile import UnreadableCheckpoint, read_torch_file

    torch.save({"w": torch.nn.Parameter(torch.ones(2))}, tmp_path / "param.pt")
    with pytest.raises(UnreadableCheckpoint):
        read_torch_file(tmp_path / "param.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(UnreadableCheckpoint, match="zip"):
        read_torch_file(tmp_path / "text.pt")
    # A pickle that would call a function on loading: refused before anything runs.
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (marker.touch, ())

    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(UnreadableCheckpoint, match="refers to"):
        read_torch_file(tmp_path / "evil.pt")
    assert not marker.exists()


def test_the_weights_read_without_torch_have_torchs_fingerprint(bgan_model):
    from blursynth.bgan.model import model_fingerprint
    from blursynth.bgan.onnx import read_generator

    folder, gen = bgan_model
    onnx_gen, info = read_generator(folder)
    assert info["fingerprint"] == model_fingerprint(gen) and info["step"] == 7
    assert info["config"] == gen.config.to_dict()


def test_a_checkpoint_the_reader_does_not_take_is_refused_in_torchs_words(bgan_model, run_cli, tmp_path):
    import torch

    folder, gen = bgan_model
    state = gen.state_dict()
    del state["tail.2.bias"]
    torch.save({"format": "blursynth-bgan", "version": 1, "config": gen.config.to_dict(),
                "generator": state}, folder / "checkpoint.pt")
    r = run_cli("bgan", "blur", two_photos(tmp_path / "photos"), "--model", folder, "--out", tmp_path / "out")
    assert r.code == 2
    assert error_line(r).startswith(f"error: --model {folder}: checkpoint does not hold a BGAN generator")
    assert not (tmp_path / "out").exists()


def test_a_damaged_checkpoint_is_refused_not_used(bgan_model, run_cli, tmp_path):
    # torch reads a checkpoint whose weights' bytes were changed on disk; the archive's CRC-32
    # says they were.
    folder, _ = bgan_model
    with zipfile.ZipFile(folder / "checkpoint.pt") as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 64)
    data = bytearray((folder / "checkpoint.pt").read_bytes())
    head = info.header_offset  # the member's data follow its local header, name and extra field
    start = head + 30 + int.from_bytes(data[head + 26:head + 28], "little") \
        + int.from_bytes(data[head + 28:head + 30], "little")
    data[start + 5] ^= 0x10
    (folder / "checkpoint.pt").write_bytes(bytes(data))
    photos = two_photos(tmp_path / "photos")
    for engine in ("auto", "torch"):
        r = run_cli("bgan", "blur", photos, "--model", folder, "--out", tmp_path / "out", "--engine", engine)
        assert r.code == 2
        assert error_line(r) == (f"error: --model {folder}: checkpoint.pt is damaged (its weights fail the "
                                 "file's CRC-32 check); restore it or train again.")
        assert not (tmp_path / "out").exists()


def test_a_checkpoint_saved_without_crcs_is_read_by_either_engine(bgan_model, run_cli, tmp_path):
    import torch

    folder, gen = bgan_model
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"format": "blursynth-bgan", "version": 1, "config": gen.config.to_dict(),
                    "generator": gen.state_dict()}, folder / "checkpoint.pt")
    finally:
        torch.serialization.set_crc32_options(True)
    photos = two_photos(tmp_path / "photos")
    for engine in ("auto", "torch"):
        r = run_cli("bgan", "blur", photos, "--model", folder, "--out", tmp_path / engine, "--engine", engine)
        assert r.code == 0, r.err


def test_onnxruntime_with_a_gpu_device_is_refused_before_anything_is_read(run_cli, tmp_path):
    r = run_cli("uid", "blur", tmp_path, "--model", tmp_path / "none", "--out", tmp_path / "out",
                "--engine", "onnxruntime", "--device", "cuda")
    assert r.code == 2 and error_line(r) == ("error: --engine onnxruntime runs on the CPU; --device cuda needs "
                                             "--engine torch (or give --device cpu).")


# --- the graphs compute what the torch networks compute --------------------------------------------

def test_bgan_graph_matches_torch_whole_and_in_tiles(bgan_model):
    from blursynth.bgan.onnx import read_generator
    from blursynth.pairs.bgan import blur_image, pair_noise

    folder, gen = bgan_model
    onnx_gen, _ = read_generator(folder)
    photo = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    noise = pair_noise(0, 3)
    want = blur_image(gen, photo, noise, tile=512)
    got = blur_image(onnx_gen, photo, noise, tile=512)
    assert np.abs(got.astype(int) - want).max() <= 1 and np.mean(got != want) < 0.01
    assert np.abs(got.astype(int) - photo).mean() > 5  # the network changed the photo
    tiled = blur_image(onnx_gen, photo, noise, tile=16)  # halos as wide as the receptive radius
    assert np.abs(tiled.astype(int) - got).max() <= 1


def test_uid_graphs_match_torch(tmp_path):
    import torch

    from blursynth.pairs.uid import encode_code, transfer_blur_image
    from blursynth.uid.model import CONFIGS, build_uid
    from blursynth.uid.onnx import OnnxUID

    config = CONFIGS["small"]
    nets = _perturbed(build_uid(config, seed=0), 2, 0.1)
    onnx_nets = OnnxUID(config, {k: v.numpy() for k, v in nets.state_dict().items()})
    rng = np.random.default_rng(1)
    for shape in ((37, 50, 3), (64, 41, 3)):  # padded (reflected) to multiples of 4, and not
        photo = rng.integers(0, 256, shape, dtype=np.uint8)
        code = rng.standard_normal(config.z_dim).astype(np.float32)
        want = transfer_blur_image(nets, photo, code)
        got = transfer_blur_image(onnx_nets, photo, code)
        assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    reference = rng.integers(0, 256, (40, 33, 3), dtype=np.uint8)
    want = encode_code(nets, reference)
    got = encode_code(onnx_nets, reference)
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-5) and np.abs(want).max() > 1e-3
    with torch.no_grad():
        assert torch.is_tensor(nets.blur_code(torch.zeros(1, 3, 16, 16))[0])


def test_the_graphs_are_valid_onnx_with_the_shapes_they_declare():
    # The ONNX checker's full check infers every value's shape and compares the declared ones.
    onnx = pytest.importorskip("onnx")

    from blursynth.bgan.config import CONFIGS as BGAN
    from blursynth.bgan.onnx import generator_graph, generator_shapes
    from blursynth.uid.config import CONFIGS as UID
    from blursynth.uid.onnx import code_graph, nets_shapes, transfer_graph

    def zeros(shapes):
        return {k: np.zeros(v, np.float32) for k, v in shapes.items()}

    graphs = [generator_graph(BGAN["tiny"], zeros(generator_shapes(BGAN["tiny"]))),
              transfer_graph(UID["tiny"], zeros(nets_shapes(UID["tiny"]))),
              code_graph(UID["tiny"], zeros(nets_shapes(UID["tiny"])))]
    for graph in graphs:
        onnx.checker.check_model(onnx.load_from_string(graph.to_bytes()), full_check=True)


# --- the command ------------------------------------------------------------------------------------

def _imports_torch(args) -> bool:
    """Whether ``blursynth ARGS`` (run in a fresh interpreter, successfully) imported torch."""
    code = ("import sys; from blursynth.cli import main\n"
            "try:\n"
            f"    main({[str(a) for a in args]!r})\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1] == "True"


def test_bgan_blur_on_the_cpu_never_imports_torch(bgan_model, tmp_path):
    folder, _ = bgan_model
    photos = two_photos(tmp_path / "photos")
    assert not _imports_torch(["bgan", "blur", photos, "--model", folder, "--out", tmp_path / "out",
                               "--per-image", 2, "--device", "cpu"])


@pytest.mark.parametrize("references", ["folder", "dataset"])
def test_uid_blur_on_the_cpu_never_imports_torch(bgan_model, run_cli, tmp_path, references):
    import torch

    from blursynth.nn.runs import UID_FORMAT
    from blursynth.uid.model import CONFIGS, build_uid

    folder = tmp_path / "uid"
    folder.mkdir()
    torch.save({"format": UID_FORMAT, "version": 1, "config": CONFIGS["tiny"].to_dict(),
                "nets": build_uid(CONFIGS["tiny"], seed=0).state_dict()}, folder / "checkpoint.pt")
    photos = two_photos(tmp_path / "photos")
    refs = two_photos(tmp_path / "refs")  # stand-ins: any images give codes
    if references == "dataset":  # a pair dataset's blurred images
        assert run_cli("bgan", "blur", refs, "--model", bgan_model[0], "--out", tmp_path / "pairs").code == 0
        refs = tmp_path / "pairs"
    assert not _imports_torch(["uid", "blur", photos, "--model", folder, "--blur-from", refs,
                               "--out", tmp_path / "out", "--workers", 2, "--device", "cpu"])


def test_engines_record_themselves_and_a_torch_dataset_resumes_with_torch(bgan_model, run_cli, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import rebuild_pair

    folder, _ = bgan_model
    photos = two_photos(tmp_path / "photos")
    args = ("bgan", "blur", photos, "--model", folder, "--per-image", 2, "--device", "cpu")
    assert run_cli(*args, "--out", tmp_path / "ort").code == 0
    assert run_cli(*args, "--out", tmp_path / "torch", "--engine", "torch").code == 0
    ort, tch = PairDataset(tmp_path / "ort"), PairDataset(tmp_path / "torch")
    assert ort.manifest["command"]["engine"] == "onnxruntime" and "engine" not in tch.manifest["command"]
    assert ort.manifest["engine"].startswith("onnxruntime 1.") and tch.manifest["engine"].startswith("torch 2.")
    for i in range(len(ort)):
        a, b = ort[i], tch[i]
        assert a["params"]["engine"] == "onnxruntime" and "engine" not in b["params"]
        assert np.abs(a["blurred"].astype(int) - b["blurred"]).max() <= 1
        for row in (a, b):  # each rebuilt by the engine that made it
            assert np.array_equal(rebuild_pair(row, photos, model=folder)[0], row["blurred"])
    # auto resumes torch's dataset with torch (a dataset made before the engines is the same)
    r = run_cli(*args, "--out", tmp_path / "torch")
    assert r.code == 0 and "nothing to do" in r.out
    assert f"note: {tmp_path / 'torch'} holds pairs torch made; they go on in torch (--engine auto)." in r.err
    r = run_cli(*args, "--out", tmp_path / "torch", "--engine", "onnxruntime")
    assert r.code == 2
    assert error_line(r) == (f"error: --out {tmp_path / 'torch'} holds this command's pairs made by torch (the "
                             "engine is part of a dataset's recipe); resume with --engine torch (or auto), "
                             "choose another --out, or pass --overwrite to replace them.")


def test_bgan_blur_bytes_do_not_depend_on_workers(bgan_model, run_cli, tmp_path):
    from blursynth.dataset import PairDataset

    folder, _ = bgan_model
    photos = two_photos(tmp_path / "photos")
    args = ("bgan", "blur", photos, "--model", folder, "--per-image", 3, "--shard-size", 2)
    assert run_cli(*args, "--out", tmp_path / "w1").code == 0
    r = run_cli(*args, "--out", tmp_path / "w2", "--workers", 2)
    assert r.code == 0, r.err
    one, two = PairDataset(tmp_path / "w1"), PairDataset(tmp_path / "w2")
    assert len(one) == len(two) == 6
    for i in range(len(one)):
        assert one[i]["blurred"].tobytes() == two[i]["blurred"].tobytes()
        assert one[i]["params"] == two[i]["params"]


def test_engine_choices_that_cannot_run_are_refused(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from blursynth.errors import BadInputError, SettingError
    from blursynth.pairs import photos
    from blursynth.pairs.bgan import BGANBlurSettings
    from blursynth.pairs.uid import UIDBlurSettings

    def resolve(engine, device):
        return photos.resolve_engine(SimpleNamespace(engine=engine), device, tmp_path, {}, n_items=1)

    with pytest.raises(SettingError, match="--engine must be one of auto, onnxruntime, torch; got 'tf'"):
        BGANBlurSettings("p", "m", engine="tf")
    with pytest.raises(SettingError, match="runs on the CPU; --device cuda:1 needs --engine torch"):
        UIDBlurSettings("p", "m", engine="onnxruntime", device="cuda:1")
    assert resolve("auto", "cuda:1") == "torch"
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(BadInputError, match="ONNX Runtime is not installed; pip install onnxruntime"):
        resolve("onnxruntime", "cpu")
    assert resolve("auto", "cpu") == "torch"


def test_a_limited_build_made_by_torch_resumes_with_torch(bgan_model, tmp_path):
    # A --limit build has a fingerprint of its own: auto recognises torch's through it.
    from blursynth.dataset.writer import WriteOptions
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur

    folder, _ = bgan_model
    photos = two_photos(tmp_path / "photos")
    limited = WriteOptions(limit=3)

    def run(engine):
        return bgan_blur(BGANBlurSettings(str(photos), str(folder), per_image=4, engine=engine),
                         tmp_path / "out", progress=False, options=limited)

    assert run("torch")["num_rows"] == 3
    again = run("auto")
    assert again["num_rows"] == 3 and again.shards_written == 0 and again["engine"].startswith("torch")
    with pytest.raises(Exception, match="made by torch .*resume with --engine torch"):
        run("onnxruntime")


def test_auto_refuses_to_resume_pairs_of_an_onnx_runtime_not_installed(bgan_model, monkeypatch, tmp_path):
    from blursynth.errors import BadInputError
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur

    folder, _ = bgan_model
    settings = BGANBlurSettings(str(two_photos(tmp_path / "photos")), str(folder), per_image=2)
    bgan_blur(settings, tmp_path / "out", progress=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(BadInputError, match="holds this command's pairs made by ONNX Runtime, which is not "
                                            "installed here; pip install onnxruntime to resume them"):
        bgan_blur(settings, tmp_path / "out", progress=False)


@pytest.mark.parametrize("builds, files, visible, answer", [
    (set(), set(), None, "cpu"),  # a CPU build of torch
    ({"cuda"}, set(), None, "cpu"),  # CUDA's build where no NVIDIA device file exists
    ({"cuda"}, {"/dev/nvidia0"}, "", "cpu"),  # a GPU hidden by CUDA_VISIBLE_DEVICES
    ({"cuda"}, {"/dev/nvidia0"}, None, "torch"),
    ({"cuda"}, {"/dev/dxg"}, None, "torch"),  # WSL
    ({"cuda"}, {"/proc/driver/nvidia"}, None, "torch"),  # the driver, its device files not made yet
    ({"cuda"}, {"/dev/nvhost-ctrl-gpu"}, None, "torch"),  # a Jetson
    ({"hip"}, set(), None, "cpu"),
    ({"hip"}, {"/dev/kfd"}, None, "torch"),
    ({"xpu"}, set(), None, "torch"),  # no file tells: torch is asked
    (None, set(), None, "torch"),  # torch's version file unreadable
])
def test_device_auto_is_the_cpu_without_torch_where_no_gpu_can_be(monkeypatch, builds, files, visible, answer):
    # bgan blur and uid blur start without torch on the CPU; --device auto must not import it
    # just to learn that a machine without a GPU has none.
    import glob
    import os

    from blursynth.nn import device

    monkeypatch.setattr(device, "_torch_gpu_builds", lambda: builds)
    monkeypatch.setattr(glob, "glob", lambda pattern: sorted(f for f in files if f.startswith("/dev/nvidia")))
    monkeypatch.setattr(os.path, "exists", lambda path: path in files)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a command that has not imported it
    asked = []
    monkeypatch.setattr(device, "resolve_device", lambda name, index=None: asked.append(name) or "cuda")
    got = device.resolve_device_name("auto")
    assert (got, asked) == (("cpu", []) if answer == "cpu" else ("cuda", ["auto"]))
