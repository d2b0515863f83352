"""DSGAN training data (srpipe.degrade.data): unreadable and too small images are skipped and listed,
and a folder with no usable image is an error that says what to change."""

from __future__ import annotations

import pytest

from tests.helpers import make_folder
from srpipe.config import RunOptions, build_config
from srpipe.degrade.config import DegradeConfig
from srpipe.degrade.train import train
from srpipe.errors import SrpipeError

TINY = {
    "data": {"hr_crop": 32, "val_fraction": 0.2},
    "model": {"features": 8, "res_blocks": 1, "d_features": 8},
    "loss": {"perceptual": "none", "w_adv": 0.05},
    "optim": {"batch": 2, "iters": 6, "lr": 1e-3},
}


def cfg(**sets) -> DegradeConfig:
    return build_config(DegradeConfig, preset=TINY, sets=[f"{k}={v}" for k, v in sets.items()])


def run_opts(**kw) -> RunOptions:
    return RunOptions(device="cpu", log_every=1, **kw)


def test_bad_and_small_images_are_skipped_and_listed(tiny_hr, tiny_lr, tmp_path, caplog):
    (tiny_hr / "broken.png").write_bytes(b"not a png")
    (tiny_hr / "empty.jpg").write_bytes(b"")
    make_folder(tiny_hr, 1, (16, 16), prefix="small")
    train(cfg(**{"optim.iters": 1}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())
    err = caplog.text
    assert "skipped 2 unreadable" in err and "broken.png" in err and "empty.jpg" in err
    assert "small_00.png (16x16)" in err


def test_no_usable_image_is_an_error_that_says_how_to_lower_the_crop(tmp_path, tiny_lr):
    small = make_folder(tmp_path / "small", 2, (16, 16))
    with pytest.raises(SrpipeError, match="hr_crop"):
        train(cfg(), hr_dir=small, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SrpipeError, match="contains no images"):
        train(cfg(), hr_dir=empty, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())
