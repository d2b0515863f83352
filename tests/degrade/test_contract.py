"""degrade.contract: the pretrained files, loss terms and run-folder names the degradation stage declares."""

from __future__ import annotations

from dataclasses import replace

from srpipe.config import build_config
from srpipe.degrade import contract as dc
from srpipe.degrade.config import PDM_PRESETS, PRESETS as D_PRESETS, DegradeConfig, PDMConfig


def dsgan(**loss) -> DegradeConfig:
    return build_config(DegradeConfig, preset=D_PRESETS["paper"], overrides={"loss": loss} if loss else None)


def test_degrade_pretrained_files():
    assert dc.pretrained(dsgan()) == ("alexnet", "inception")  # paper: LPIPS AlexNet; held-out real LR
    assert dc.pretrained(dsgan(perceptual="lpips-vgg")) == ("vgg16", "inception")
    assert dc.pretrained(dsgan(w_perceptual=0.0)) == ("inception",)
    same = build_config(DegradeConfig, overrides={"data": {"same_domain": True}})
    assert dc.pretrained(same) == ("alexnet",) and not dc.holds_out_real(same)  # no real LR to hold out
    pdm = build_config(PDMConfig, preset=PDM_PRESETS["tiny"])
    assert dc.pretrained(pdm) == ("inception",) and dc.method_of(pdm) == "pdm"
    assert dc.pretrained(replace(pdm, data=replace(pdm.data, val_fraction=0.0))) == ()


def test_degrade_loss_terms():
    assert dc.loss_terms(dsgan()) == dsgan().loss.active()
    pdm = build_config(PDMConfig, preset=PDM_PRESETS["tiny"], overrides={"loss": {"w_spectrum": 0.5}})
    assert dc.loss_terms(pdm) == [
        "adversarial(lsgan, patch D on high-pass x4) x1",
        "noise energy x1",
        "log spectrum x0.5",
    ]


def test_file_names():
    assert dc.sample_file(3) == "step_00000003.png" and dc.GENERATOR == "generator.safetensors"
    assert dc.run_files("pdm") == (*dc.run_files("dsgan"), dc.KERNEL)
