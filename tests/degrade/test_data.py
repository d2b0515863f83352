"""DSGAN training data (srpipe.degrade.data): unreadable and too small images are skipped and listed,
and a folder with no usable image is an error that says what to change."""

from __future__ import annotations

import pytest

from tests.helpers import cpu_run, dsgan_cfg, make_folder
from srpipe.degrade.train import train
from srpipe.errors import SrpipeError


def test_bad_and_small_images_are_skipped_and_listed(tiny_hr, tiny_lr, tmp_path, caplog):
    (tiny_hr / "broken.png").write_bytes(b"not a png")
    (tiny_hr / "empty.jpg").write_bytes(b"")
    make_folder(tiny_hr, 1, (16, 16), prefix="small")
    train(dsgan_cfg(**{"optim.iters": 1}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=cpu_run())
    err = caplog.text
    assert "skipped 2 unreadable" in err and "broken.png" in err and "empty.jpg" in err
    assert "small_00.png (16x16)" in err


def test_no_usable_image_is_an_error_that_says_how_to_lower_the_crop(tmp_path, tiny_lr):
    small = make_folder(tmp_path / "small", 2, (16, 16))
    with pytest.raises(SrpipeError, match="hr_crop"):
        train(dsgan_cfg(), hr_dir=small, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=cpu_run())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SrpipeError, match="contains no images"):
        train(dsgan_cfg(), hr_dir=empty, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=cpu_run())
