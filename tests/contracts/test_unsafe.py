"""Model and statistics files from strangers never run code.

Every file a user hands srpipe is read with `torch.load(weights_only=True)`, `safetensors` or
`np.load(allow_pickle=False)`. Each test feeds a pickle whose unpickling would create a marker file
(`os.system("touch MARKER")`) to one of the places that read user files, through the CLI, and checks
that it is refused with one line naming the file and that the marker does not exist. A control test
proves the payload is live: unpickled the unsafe way, it does create the marker.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import ROOT, dsgan_argv, make_folder
from srpipe.engine import ckpt, weights
from srpipe.cli import main
from srpipe.upscale import interop
from srpipe.upscale.archs import RRDBNet

SRC = ROOT / "src" / "srpipe"


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def evil_state(marker: Path) -> dict:
    """A state dict that looks like an ESRGAN's, with the payload riding along."""
    args = {"scale": 4, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 32}
    return {"params_ema": RRDBNet(**args).state_dict(), "meta": Payload(marker)}


def write_evil(path: Path, marker: Path, fmt: str = "zip") -> Path:
    """The payload in a torch zip file, a legacy torch file, or a bare pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "zip":
        torch.save(evil_state(marker), path)
    elif fmt == "legacy":
        torch.save(evil_state(marker), path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(evil_state(marker)))
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "the pickle payload ran"


def cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code, capsys.readouterr().err


def refused(code: int, err: str, path: Path) -> str:
    assert code != 0 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(path) in lines[0], err
    return lines[0]


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle"])
def test_the_payload_is_live(tmp_path, fmt):
    """Control: loaded without weights_only, each file really runs its payload."""
    m = tmp_path / "RAN"
    p = write_evil(tmp_path / f"evil.{fmt}", m, fmt)
    if fmt == "pickle":
        pickle.loads(p.read_bytes())
    else:
        torch.load(p, weights_only=False)
    assert m.exists()


@pytest.fixture
def good_model(tmp_path) -> Path:
    args = {"scale": 4, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 32}
    return interop.save_generator(tmp_path / "good.safetensors", RRDBNet(**args).state_dict(), args)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle"])
def test_upscale_refuses_a_pickle_with_code(tmp_path, capsys, marker, fmt):
    evil = write_evil(tmp_path / "RealESRGAN_x4plus.pth", marker, fmt)
    src = make_folder(tmp_path / "in", 1, (8, 8))
    code, err = cli(capsys, "upscale", "--model", evil, "--input", src, "--out", tmp_path / "sr", "--device", "cpu")
    line = refused(code, err, evil)
    assert "weights_only=True" in line and "never unpickles code" in line
    assert not (tmp_path / "sr").exists()


def test_export_and_interpolate_refuse_it(tmp_path, capsys, marker, good_model):
    evil = write_evil(tmp_path / "net.pth", marker)
    code, err = cli(capsys, "export", "--model", evil, "--out", tmp_path / "out.safetensors")
    refused(code, err, evil)
    code, err = cli(
        capsys,
        "interpolate",
        "--psnr",
        good_model,
        "--gan",
        evil,
        "--alpha",
        "0.5",
        "--out",
        tmp_path / "a.safetensors",
    )
    refused(code, err, evil)
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "a.safetensors").exists()


def _pairs(root: Path) -> Path:
    make_folder(root / "hr", 2, (64, 64), seed=1)
    make_folder(root / "lr", 2, (16, 16), seed=1)
    return root


SR_SMALL = [
    "--preset",
    "tiny",
    "--set",
    "data.hr_patch=32",
    "--set",
    "model.num_feat=8",
    "--set",
    "model.num_block=1",
    "--set",
    "batch=2",
    "--psnr-iters",
    "2",
    "--gan-iters",
    "0",
    "--device",
    "cpu",
]


def test_sr_train_init_refuses_it(tmp_path, capsys, marker, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    evil = write_evil(tmp_path / "published.pth", marker)
    code, err = cli(
        capsys, "sr-train", "--pairs", _pairs(tmp_path / "pairs"), "--out", tmp_path / "run", "--init", evil, *SR_SMALL
    )
    refused(code, err, evil)
    assert not (tmp_path / "run" / "psnr.safetensors").exists()


@pytest.mark.parametrize("name", ["generator.pth", "generator.safetensors"])
def test_make_pairs_refuses_it(tmp_path, capsys, marker, name):
    evil = write_evil(tmp_path / "run" / name, marker)
    code, err = cli(
        capsys,
        "make-pairs",
        "--model",
        evil,
        "--hr",
        make_folder(tmp_path / "hr", 1, (16, 16)),
        "--out",
        tmp_path / "pairs",
        "--device",
        "cpu",
    )
    assert "not a readable .safetensors file" in refused(code, err, evil)
    if name == "generator.safetensors":  # given as a run folder: the same file, the same refusal
        code, err = cli(
            capsys,
            "make-pairs",
            "--model",
            tmp_path / "run",
            "--hr",
            tmp_path / "hr",
            "--out",
            tmp_path / "pairs",
            "--device",
            "cpu",
        )
        refused(code, err, evil)
    assert not (tmp_path / "pairs").exists()


def test_tampered_resume_state_is_refused(tmp_path, capsys, marker):
    """A checkpoint's state.pt replaced by a pickle with code: resuming refuses it, nothing runs."""
    hr = make_folder(tmp_path / "hr", 2, (32, 32), seed=1)
    lr = make_folder(tmp_path / "lr", 2, (16, 16), seed=2)
    args = [
        *dsgan_argv(
            hr,
            lr,
            tmp_path / "run",
            "--iters",
            "2",
            "--device",
            "cpu",
            "--set",
            "data.hr_crop=32",
            "--set",
            "model.features=8",
            "--set",
            "model.res_blocks=1",
            "--set",
            "model.d_features=8",
            "--set",
            "optim.batch=2",
            "--set",
            "data.val_fraction=0",
            flag="--lr",
        ),
    ]
    code, err = cli(capsys, *args)
    assert code == 0, err
    folder = ckpt.latest_checkpoint(tmp_path / "run" / "ckpt")
    state = torch.load(folder / "state.pt", weights_only=True)
    torch.save({**state, "hook": Payload(marker)}, folder / "state.pt")
    code, err = cli(capsys, *args)
    line = refused(code, err, folder / "state.pt")
    assert "cannot load training state" in line


@pytest.mark.parametrize("name", ["alexnet", "inception"])
def test_pretrained_backbone_files_refuse_it(tmp_path, capsys, marker, name, empty_torch_home):
    """A pickle with code dropped into --weights-dir under a backbone's real file name."""
    wdir = tmp_path / "weights"
    evil = write_evil(wdir / weights.FILES[name].filename, marker)
    hr = make_folder(tmp_path / "hr", 2, (64, 64), seed=1)
    if name == "alexnet":
        code, err = cli(
            capsys,
            *dsgan_argv(
                hr,
                make_folder(tmp_path / "lr", 2, (32, 32)),
                tmp_path / "run",
                "--set",
                "loss.perceptual=lpips-alex",
                "--weights-dir",
                wdir,
                "--device",
                "cpu",
                flag="--lr",
            ),
        )
    else:
        code, err = cli(capsys, "eval-fid", hr, hr, "--weights-dir", wdir, "--device", "cpu", "--no-cache")
    assert "cannot load pretrained weights" in refused(code, err, evil)


def test_fid_statistics_with_pickled_objects_are_refused(tmp_path, capsys, marker):
    stats = tmp_path / "stats.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    np.savez(stats, mu=np.zeros(4), sigma=np.eye(4), extra=obj)
    with np.load(stats, allow_pickle=True) as f:  # control: the unsafe way would run it
        assert f["extra"] is not None
    assert marker.exists()
    marker.unlink()
    np.savez(stats, mu=obj, sigma=np.eye(4))
    code, err = cli(capsys, "eval-fid", stats, stats)
    assert "allow_pickle=False" in refused(code, err, stats)


def test_weights_srpipe_writes_are_safetensors(tmp_path):
    """`.safetensors` is what srpipe writes: the file is data, its header JSON, nothing to execute."""
    sd = {"w": torch.ones(2)}
    ckpt.save_weights(tmp_path / "w.safetensors", sd, arch="Toy", args={"n": 2})
    raw = (tmp_path / "w.safetensors").read_bytes()
    assert b"\x80\x04" not in raw[:16] and raw[8:9] == b"{"  # 8-byte header length, then JSON: no pickle
    ckpt.save_checkpoint(tmp_path / "ck", 1, {"g": (sd, "Toy", {})}, {"opt": {"lr": 1.0}})
    folder = ckpt.latest_checkpoint(tmp_path / "ck")
    assert sorted(p.name for p in folder.iterdir()) == ["g.safetensors", "state.pt"]
    assert torch.load(folder / "state.pt", weights_only=True)["step"] == 1  # resume state: weights_only loads it


# ---------------------------------------------------------------------------------------------
# Source guard: no loader in srpipe may unpickle arbitrary objects


def _loads(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
            yield name, node.func.attr, {k.arg: k.value for k in node.keywords}, node


def test_every_loader_in_the_source_is_safe():
    """torch.load only with weights_only=True, np.load only with allow_pickle=False, never pickle.load."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for base, attr, kw, node in _loads(tree):
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            if base == "torch" and attr == "load":
                found.append(where)
                wo = kw.get("weights_only")
                assert isinstance(wo, ast.Constant) and wo.value is True, (
                    f"{where}: torch.load without weights_only=True"
                )
            elif base == "np" and attr == "load":
                found.append(where)
                ap = kw.get("allow_pickle")
                assert isinstance(ap, ast.Constant) and ap.value is False, (
                    f"{where}: np.load without allow_pickle=False"
                )
            elif base in ("pickle", "dill", "cloudpickle", "joblib") and attr in ("load", "loads"):
                raise AssertionError(f"{where}: {base}.{attr} unpickles arbitrary objects")
            elif base == "hub" and attr in ("load", "load_state_dict_from_url"):
                raise AssertionError(f"{where}: torch.hub.{attr} loads with weights_only=False by default")
    assert len(found) >= 5  # the guard looks at the real loaders (ckpt, weights, interop, fid, decode cache)
