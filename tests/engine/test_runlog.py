"""TensorBoard events of degrade-train and sr-train: scalars, sample grids, config text; resume appends."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from tests.helpers import make_folder  # noqa: E402
from srpipe.engine import runlog  # noqa: E402
from srpipe.config import RunOptions, build_config  # noqa: E402
from srpipe.degrade.config import DegradeConfig  # noqa: E402
from srpipe.degrade.train import train as degrade_train  # noqa: E402
from srpipe.errors import SrpipeError  # noqa: E402
from srpipe.io.imageio import read_image  # noqa: E402
from srpipe.upscale.config import PRESETS, UpscaleConfig  # noqa: E402
from srpipe.upscale.train import train as sr_train  # noqa: E402

TINY_DSGAN = {
    "data": {"hr_crop": 32, "val_fraction": 0.0},
    "model": {"features": 8, "res_blocks": 1, "d_features": 8},
    "loss": {"perceptual": "none", "w_adv": 0.05},
    "optim": {"batch": 2, "iters": 4, "lr": 1e-3},
}
SR_SETS = [
    "data.hr_patch=32",
    "model.num_feat=8",
    "model.num_block=1",
    "model.num_grow_ch=8",
    "model.d_features=8",
    "batch=2",
    "psnr.iters=2",
    "gan.iters=2",
    "data.val_fraction=0.25",
]


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def events(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_degrade_train_events_and_resume_after_a_crash(tmp_path):
    hr, lr = make_folder(tmp_path / "hr", 2, (40, 40)), make_folder(tmp_path / "lr", 2, (16, 16), prefix="lr", seed=1)
    cfg = build_config(DegradeConfig, preset=TINY_DSGAN)
    run = RunOptions(device="cpu", log_every=1, ckpt_every=2, sample_every=2)
    out = tmp_path / "run"
    degrade_train(cfg, hr_dir=hr, real_lr_dir=lr, out_dir=out, run=run)

    acc = events(out / "tb")
    rows = csv_rows(out / "log.csv")  # the CSV stays next to the events
    assert [e.step for e in acc.Scalars("loss/d_real")] == [1, 2, 3, 4]
    assert [round(e.value, 5) for e in acc.Scalars("loss/g_total")] == [round(float(r["g_total"]), 5) for r in rows]
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([float(r["lr"]) for r in rows], rel=1e-6)
    assert acc.Scalars("train/lr")[0].value == pytest.approx(1e-3, rel=1e-6)
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [2, 4]  # the in-loop grid at 2 and the final one, after the log closed
    png, _ = read_image(out / "samples" / "step_00000004.png")
    assert (grids[-1].height, grids[-1].width) == tuple(png.shape[-2:])
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads("\n".join(line[4:] for line in config.splitlines())) == json.loads(
        (out / "config.json").read_text()
    )

    # A crash after step 4 was logged but before its checkpoint: the rerun resumes at step 2 and
    # appends; the steps it redoes replace the old ones (purged), as in the CSV.
    shutil.rmtree(out / "ckpt" / "step_00000004")
    (out / "ckpt" / "latest").write_text("step_00000002\n")
    degrade_train(cfg, hr_dir=hr, real_lr_dir=lr, out_dir=out, run=run)
    acc = events(out / "tb")
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) >= 2  # appended, not rewritten
    assert [e.step for e in acc.Scalars("loss/d_real")] == [1, 2, 3, 4]
    assert [r["step"] for r in csv_rows(out / "log.csv")] == ["1", "2", "3", "4"]
    assert len(acc.Tensors("config/text_summary")) == 1


def test_sr_train_writes_one_event_run_per_phase(tmp_path):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    pairs = tmp_path / "pairs"
    for d in ("hr", "lr"):
        (pairs / d).mkdir(parents=True)
    for i in range(4):
        base = rng.random((8, 8, 3)).astype(np.float32)
        hr = (cv2.resize(base, (48, 48), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).round().astype(np.uint8)
        cv2.imwrite(str(pairs / "hr" / f"im{i}.png"), hr)
        cv2.imwrite(str(pairs / "lr" / f"im{i}.png"), cv2.resize(hr, (12, 12), interpolation=cv2.INTER_AREA))
    cfg = build_config(UpscaleConfig, preset=PRESETS["tiny"], sets=SR_SETS)
    out = tmp_path / "run"
    sr_train(cfg, pairs=pairs, out_dir=out, run=RunOptions(device="cpu", ckpt_every=2, log_every=1), val_every=2)
    for phase in ("psnr", "gan"):
        acc = events(out / "tb" / phase)
        rows = csv_rows(out / f"log_{phase}.csv")
        assert [e.step for e in acc.Scalars("loss/l_pix")] == [1, 2]
        val = acc.Scalars("val/psnr_y")
        assert [e.step for e in val] == [2]
        assert val[0].value == pytest.approx(float(rows[-1]["val_psnr_y"]), rel=1e-5)
        assert [g.step for g in acc.Images("samples")] == [2]
    assert "loss/l_adv" in events(out / "tb" / "gan").Tags()["scalars"]
    assert "loss/l_adv" not in events(out / "tb" / "psnr").Tags()["scalars"]


def test_log_modes(tmp_path, monkeypatch):
    for mode, has_csv, has_tb in (("csv", True, False), ("tensorboard", False, True), ("both", True, True)):
        log = runlog.RunLog(tmp_path / mode, "log.csv", ["a"], mode=mode)
        log.write(1, {"a": 0.5})
        log.close()
        assert (tmp_path / mode / "log.csv").is_file() == has_csv
        assert (tmp_path / mode / "tb").is_dir() == has_tb
    assert [e.value for e in events(tmp_path / "tensorboard" / "tb").Scalars("loss/a")] == [0.5]
    monkeypatch.setattr(runlog, "tensorboard_available", lambda: False)
    assert runlog.log_targets("auto") == (True, False)
    with pytest.raises(SrpipeError, match=r"pip install 'srpipe\[tb\]'"):
        runlog.log_targets("tensorboard")
    with pytest.raises(SrpipeError, match="--log 'tb'"):
        runlog.log_targets("tb")


def test_cli_log_tensorboard_without_the_package_fails_before_any_work(tmp_path, monkeypatch, capsys):
    from srpipe.cli import main

    monkeypatch.setattr(runlog, "tensorboard_available", lambda: False)
    hr = make_folder(tmp_path / "hr", 1, (40, 40))
    with pytest.raises(SystemExit) as e:
        main(
            [
                "degrade-train",
                "--hr",
                str(hr),
                "--same-domain",
                "--out",
                str(tmp_path / "run"),
                "--preset",
                "tiny",
                "--device",
                "cpu",
                "--log",
                "tensorboard",
            ]
        )
    assert e.value.code == 1
    assert "pip install 'srpipe[tb]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
