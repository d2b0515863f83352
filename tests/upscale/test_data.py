"""Paired data: matching, size checks, the decode cache, aligned crops."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from srpipe.engine import augment
from srpipe.upscale import data


def make_pairs(root, n=3, lr_size=(16, 12), scale=4, seed=0):
    """`n` pairs whose LR is an exact box downscale of the HR (so alignment is testable)."""
    rng = np.random.default_rng(seed)
    (root / "hr").mkdir(parents=True, exist_ok=True)
    (root / "lr").mkdir(parents=True, exist_ok=True)
    w, h = lr_size
    for i in range(n):
        hr = (rng.random((h * scale, w * scale, 3)) * 255).astype(np.uint8)
        lr = cv2.resize(hr, (w, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "hr" / f"p{i}.png"), hr)
        cv2.imwrite(str(root / "lr" / f"p{i}.png"), lr)
    return root


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_pairs_load_memory_mapped_from_a_content_keyed_cache(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs")
    pairs = data.load_pairs(root, 4, min_lr=8, cache_dir=cache)
    assert [p.name for p in pairs] == ["p0", "p1", "p2"]
    assert isinstance(pairs[0].hr, np.memmap) and pairs[0].hr.dtype == np.uint8
    assert pairs[0].hr.shape == (48, 64, 3) and pairs[0].lr.shape == (12, 16, 3)
    bgr = cv2.imread(str(root / "hr" / "p0.png"))
    assert np.array_equal(pairs[0].hr, bgr[:, :, ::-1])  # RGB
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 6
    # content-keyed: a renamed copy of a file maps to the same entry, nothing new is decoded
    (root / "hr" / "p0.png").rename(root / "hr" / "q0.png")
    (root / "lr" / "p0.png").rename(root / "lr" / "q0.png")
    data.load_pairs(root, 4, min_lr=8, cache_dir=cache)
    assert sorted(cache.rglob("*.npy")) == entries


def test_size_that_disagrees_with_scale_names_the_file(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs")
    cv2.imwrite(str(root / "lr" / "p1.png"), np.zeros((12, 15, 3), np.uint8))
    with pytest.raises(
        data.PairsError,
        match=r"pair p1: .*hr/p1.png is 64x48 but .*lr/p1.png is 15x12; at x4 the HR must be exactly 60x48",
    ):
        data.load_pairs(root, 4, min_lr=8, cache_dir=cache)


def test_wrong_scale_for_the_whole_folder(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs")
    with pytest.raises(data.PairsError, match="pair p0"):
        data.load_pairs(root, 2, min_lr=8, cache_dir=cache)
    (root / "pairs.json").write_text(json.dumps({"scale": 4, "pairs": []}))
    with pytest.raises(
        data.PairsError, match="pairs.json says these pairs are x4 but the training scale is x2; use --scale 4"
    ):
        data.load_pairs(root, 2, min_lr=8, cache_dir=cache)


def test_unmatched_names_and_missing_folders(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs")
    (root / "lr" / "p2.png").unlink()
    with pytest.raises(data.PairsError, match="no LR in .* for p2.png"):
        data.load_pairs(root, 4, min_lr=8, cache_dir=cache)
    with pytest.raises(data.PairsError, match="has no hr/ folder"):
        data.load_pairs(tmp_path / "nothing", 4, min_lr=8, cache_dir=cache)


def test_small_pairs_are_skipped_and_none_left_is_an_error(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs")
    warnings = []
    assert len(data.load_pairs(root, 4, min_lr=12, cache_dir=cache, warn=warnings.append)) == 3
    with pytest.raises(data.PairsError, match="smaller than 13 px"):
        data.load_pairs(root, 4, min_lr=13, cache_dir=cache, warn=warnings.append)
    assert "skipped 3 pair(s)" in warnings[0]


def test_random_batch_crops_are_aligned(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs", lr_size=(20, 20))
    pairs = data.load_pairs(root, 4, min_lr=8, cache_dir=cache)
    gen = torch.Generator().manual_seed(0)
    lr, hr = data.random_batch(pairs, 16, 8, 4, gen, flips=True, rotations=True)
    assert lr.shape == (16, 3, 8, 8) and hr.shape == (16, 3, 32, 32)
    assert lr.dtype == torch.float32 and 0 <= lr.min() and hr.max() <= 1
    # the LR is the 4x4 area average of the HR, so crops (and their flips/rotations) must agree
    down = torch.nn.functional.avg_pool2d(hr, 4)
    assert (down - lr).abs().max() < 1.5 / 255
    # same generator state, same batch: resumable data stream
    gen2 = torch.Generator().manual_seed(0)
    assert torch.equal(data.random_batch(pairs, 16, 8, 4, gen2)[0], lr)


def test_split_holds_out_at_least_one_and_keeps_one():
    assert augment.split(10, 0.1, 0)[1] and len(augment.split(10, 0.1, 0)[1]) == 1
    assert len(augment.split(3, 0.01, 0)[1]) == 1
    assert len(augment.split(2, 0.9, 0)[0]) == 1
    assert augment.split(5, 0.0, 0) == ([0, 1, 2, 3, 4], [])
    assert augment.split(10, 0.3, 7) == augment.split(10, 0.3, 7)


def test_center_pair_respects_the_unshuffle_multiple(tmp_path, cache):
    root = make_pairs(tmp_path / "pairs", n=1, lr_size=(19, 14), scale=2)
    pair = data.load_pairs(root, 2, min_lr=8, cache_dir=cache)[0]
    lr, hr = data.center_pair(pair, 2, max_lr=16, multiple=4)
    assert lr.shape == (1, 3, 12, 16) and hr.shape == (1, 3, 24, 32)
