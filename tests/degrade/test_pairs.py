"""make-pairs with a learned generator (srpipe.degrade.pairs): sizes and manifest, TDSR cleanup,
tiling, refused models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import ckpt
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.pairs import make_pairs
from srpipe.errors import SrpipeError


@pytest.fixture
def generator_file(tmp_path) -> Path:
    torch.manual_seed(3)
    G = DSGANGenerator(features=8, res_blocks=2)
    p = tmp_path / "g.safetensors"
    ckpt.save_weights(
        p, G.state_dict(), arch="DSGANGenerator", args={"features": 8, "res_blocks": 2}, meta={"scale": 4}
    )
    return p


def test_make_pairs_sdsr_sizes_and_manifest(tmp_path, generator_file):
    hr = make_folder(tmp_path / "hrin", 2, (70, 66))
    m = make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "pairs", device="cpu")
    assert m["scale"] == 4 and m["mode"] == "SDSR" and len(m["pairs"]) == 2
    from srpipe.io.imageio import read_image

    h, _ = read_image(tmp_path / "pairs" / "hr" / "img_00.png")
    lo, _ = read_image(tmp_path / "pairs" / "lr" / "img_00.png")
    assert h.shape == (3, 64, 68) and lo.shape == (3, 16, 17)
    assert json.loads((tmp_path / "pairs" / "pairs.json").read_text())["generator"]["sha256"]


def test_make_pairs_tdsr_cleans_hr_first(tmp_path, generator_file):
    hr = make_folder(tmp_path / "hrin", 1, (66, 64))
    make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "p", cleanup_factor=2, device="cpu")
    from srpipe.io.imageio import read_image

    h, _ = read_image(tmp_path / "p" / "hr" / "img_00.png")
    lo, _ = read_image(tmp_path / "p" / "lr" / "img_00.png")
    assert h.shape == (3, 32, 32) and lo.shape == (3, 8, 8)
    assert json.loads((tmp_path / "p" / "pairs.json").read_text())["mode"] == "TDSR"


def test_make_pairs_tiles_equal_the_whole_image(tmp_path, generator_file):
    hr = make_folder(tmp_path / "hrin", 1, (200, 136))
    make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "small_tiles", tile=8, device="cpu")
    make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "whole", tile=4096, device="cpu")
    a = (tmp_path / "small_tiles" / "lr" / "img_00.png").read_bytes()
    b = (tmp_path / "whole" / "lr" / "img_00.png").read_bytes()
    assert a == b


def test_make_pairs_refuses_missing_or_foreign_models(tmp_path):
    hr = make_folder(tmp_path / "hrin", 1, (32, 32))
    with pytest.raises(SrpipeError, match="does not exist"):
        make_pairs(model=tmp_path / "nope.safetensors", hr_dir=hr, out_dir=tmp_path / "o", device="cpu")
    (tmp_path / "run").mkdir()
    with pytest.raises(SrpipeError, match="did degrade-train finish"):
        make_pairs(model=tmp_path / "run", hr_dir=hr, out_dir=tmp_path / "o", device="cpu")
    other = tmp_path / "d.safetensors"
    ckpt.save_weights(
        other, DSGANDiscriminator(features=4).state_dict(), arch="DSGANDiscriminator", args={"features": 4}
    )
    with pytest.raises(SrpipeError, match="not a degrade-train model"):
        make_pairs(model=other, hr_dir=hr, out_dir=tmp_path / "o", device="cpu")
    assert not (tmp_path / "o" / "pairs.json").exists()
