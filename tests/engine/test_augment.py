"""Batched device-side crops/flips/rotations (srpipe.engine.augment) equal the per-sample reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srpipe.engine import augment
from srpipe.degrade.data import image_sizes, random_crops
from srpipe.upscale.data import Pair, PairBank, random_batch

SIZES = [(23, 31), (40, 17), (64, 64), (19, 50)]


def images(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8) for h, w in SIZES]


def test_every_flip_and_rotation_combination_matches_rot90_and_flip():
    # The tables are built by applying flip/rot90 to a coordinate grid; check them against the
    # same operations applied to an image, for all eight combinations and a non-square crop source.
    img = torch.arange(5 * 5 * 3, dtype=torch.uint8).view(5, 5, 3)
    n = 8
    d = augment.Draws(
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        torch.tensor([False] * 4 + [True] * 4),
        torch.tensor([0, 1, 2, 3] * 2),
    )
    got = augment.ImageBank([img]).crops(d, 5)
    chw = img.permute(2, 0, 1)
    for i in range(n):
        want = torch.rot90(chw.flip(-1) if i >= 4 else chw, i % 4, (-2, -1))
        assert torch.equal(got[i], want), i


@pytest.mark.parametrize("placement", ["auto", "mapped"])
@pytest.mark.parametrize("multiple", [1, 3])
def test_bank_equals_the_per_sample_reference_for_the_same_draws(placement, multiple):
    imgs = images()
    bank = augment.ImageBank(imgs, placement=placement)
    assert bank.placement == ("host" if placement == "auto" else "mapped")
    d = augment.draw(
        torch.Generator().manual_seed(1), bank.sizes, 64, 16, multiple=multiple, flips=True, rotations=True
    )
    assert set((d.flip.long() * 4 + d.rot).tolist()) == set(range(8))  # every combination is exercised
    assert bool((d.y % multiple == 0).all() and (d.x % multiple == 0).all())
    assert bool((d.y + 16 <= bank.sizes[d.index, 0]).all() and (d.x + 16 <= bank.sizes[d.index, 1]).all())
    want = augment.reference_crops(imgs, d, 16)
    got = bank.crops(d, 16)
    assert got.dtype == torch.uint8 and got.is_contiguous()
    assert torch.equal(got, want)
    nhwc = bank.crops(d, 16, channels_last=True)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc, want)
    # numpy sources (the memory-mapped pair cache) give the same result
    assert torch.equal(augment.ImageBank([im.numpy() for im in imgs], placement=placement).crops(d, 16), want)


def test_draws_are_reproducible_from_the_generator_state_and_sliceable():
    sizes = torch.tensor(SIZES)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    a = augment.draw(g, sizes, 8, 12, flips=True, rotations=True)
    g.set_state(state)
    b = augment.draw(g, sizes, 8, 12, flips=True, rotations=True)
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))
    half = a.slice(4, 8)
    assert len(half) == 4 and torch.equal(half.y, a.y[4:])
    plain = augment.draw(torch.Generator().manual_seed(5), sizes, 8, 12)
    assert not plain.flip.any() and not plain.rot.any()
    with pytest.raises(ValueError, match="smaller than the 30-px crop"):
        augment.draw(g, sizes, 4, 30)


def test_dsgan_reference_crops_equal_the_bank_used_in_training():
    chw = [im.permute(2, 0, 1).contiguous() for im in images(2)]
    ref = random_crops(chw, 16, 12, torch.Generator().manual_seed(3), flips=True, rotations=True, multiple=4)
    bank = augment.ImageBank([im.permute(1, 2, 0) for im in chw])
    d = augment.draw(torch.Generator().manual_seed(3), image_sizes(chw), 16, 12, multiple=4, flips=True, rotations=True)
    assert torch.equal(augment.to_float(bank.crops(d, 12)), ref)


def test_pair_bank_equals_random_batch_and_keeps_lr_hr_aligned():
    rng = np.random.default_rng(0)
    pairs = []
    for i, (h, w) in enumerate([(10, 12), (16, 9), (11, 11)]):
        hr = rng.integers(0, 256, (h * 4, w * 4, 3), dtype=np.uint8)
        lr = hr[::4, ::4].copy()  # nearest "downscale": an aligned crop of LR is the subsample of HR's crop
        pairs.append(Pair(f"p{i}", lr, hr))
    lr_ref, hr_ref = random_batch(pairs, 32, 8, 4, torch.Generator().manual_seed(7))
    bank = PairBank(pairs, 4, device="cpu")
    d = bank.draw(torch.Generator().manual_seed(7), 32, 8, flips=True, rotations=True)
    lr, hr = bank.batch(d, 8)
    assert lr.shape == (32, 3, 8, 8) and hr.shape == (32, 3, 32, 32)
    assert torch.equal(lr, lr_ref) and torch.equal(hr, hr_ref)
    # alignment survives flips and rotations: with both transforms undone, HR subsampled is LR
    for k in range(32):
        flip, rot = bool(d.flip[k]), int(d.rot[k])
        undo = lambda t: torch.rot90(t, -rot, (-2, -1)).flip(-1) if flip else torch.rot90(t, -rot, (-2, -1))  # noqa: E731
        assert torch.equal(undo(hr[k])[:, ::4, ::4], undo(lr[k]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("placement", ["device", "pinned", "mapped"])
def test_cuda_placements_equal_the_reference(placement):
    imgs = images()
    bank = augment.ImageBank(imgs, device="cuda", placement=placement)
    d = augment.draw(torch.Generator().manual_seed(1), bank.sizes, 64, 16, flips=True, rotations=True)
    got = bank.crops(d, 16, channels_last=True)
    assert got.device.type == "cuda"
    assert torch.equal(got.cpu(), augment.reference_crops(imgs, d, 16))
