"""DSGAN presets (srpipe.degrade.config): the paper preset is the official recipe, the tiny one is quick."""

from __future__ import annotations

from srpipe.config import build_config
from srpipe.degrade.config import PRESETS, DegradeConfig


def test_paper_preset_matches_the_official_recipe():
    c = build_config(DegradeConfig, preset=PRESETS["paper"])
    assert (c.optim.lr, c.optim.beta1, c.optim.beta2, c.optim.batch) == (2e-4, 0.5, 0.999, 16)
    assert (c.data.hr_crop, c.data.lr_crop, c.loss.w_color, c.loss.w_adv, c.loss.w_perceptual) == (
        512,
        128,
        1.0,
        0.005,
        0.01,
    )
    assert c.optim.iters == 80_000 and c.loss.perceptual == "lpips-alex" and c.model.res_blocks == 8
    t = build_config(DegradeConfig, preset=PRESETS["tiny"])
    assert t.loss.perceptual == "none" and t.optim.iters <= 500
