"""bench/quality.py's true degradations: sizes, formats and the noise/JPEG levels they document."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import quality  # noqa: E402

from srpipe.jpeg import quality_from_qtables  # noqa: E402
from srpipe.realism import noise_sigma  # noqa: E402


def _flat_photo(h=128, w=160) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0.2, 0.7, h), torch.linspace(0.3, 0.6, w), indexing="ij")
    return torch.stack([x, y, (x + y) / 2])


def _decode(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(2, 0, 1) / 255


def test_noise_degradation_has_sigma_8_levels_at_quarter_size():
    data, ext = quality.degrade_noise(_flat_photo(), np.random.default_rng(0))
    lq = _decode(data)
    assert ext == "png" and lq.shape == (3, 32, 40)
    # 32x40 pixels give the MAD estimate a relative standard error of about 5%; rounding adds 1/12 level^2.
    assert noise_sigma(lq).mean().item() * 255 == pytest.approx(8.0, rel=0.2)


@pytest.mark.parametrize("kind,qualities", [("jpeg", {30}), ("camera", set(range(70, 91)))])
def test_compressing_degradations_store_the_jpeg_file(kind, qualities):
    data, ext = quality.DEGRADATIONS[kind](_flat_photo(), np.random.default_rng(1))
    assert ext == "jpg" and data[:2] == b"\xff\xd8"
    img = Image.open(io.BytesIO(data))
    assert img.size == (40, 32)
    assert quality_from_qtables(img.quantization) in qualities


def test_degradations_are_reproducible_per_seed():
    a = quality.degrade_camera(_flat_photo(), np.random.default_rng(5))[0]
    b = quality.degrade_camera(_flat_photo(), np.random.default_rng(5))[0]
    c = quality.degrade_camera(_flat_photo(), np.random.default_rng(6))[0]
    assert a == b and a != c
