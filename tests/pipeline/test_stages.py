"""pipeline.stages: the stages take their pretrained files, keys and descriptions from the stage contracts."""

from __future__ import annotations

from srpipe.degrade import contract as dc
from srpipe.upscale import contract as uc


def test_the_stages_read_the_contracts(tmp_path):
    from srpipe.pipeline.spec import load_pipeline
    from srpipe.pipeline.stages import build_stages

    for d in ("hr", "lr", "test"):
        (tmp_path / d).mkdir()
    (tmp_path / "p.toml").write_text(
        '[inputs]\nhr = "hr"\nreal_lr = "lr"\ntest_hr = "test"\n[degrade]\npreset = "tiny"\n'
        '[sr]\npreset = "paper"\n[baseline]\nkinds = ["blind"]\n'
    )
    p = load_pipeline(tmp_path / "p.toml")
    st = {s.name: s for s in build_stages(p)}
    assert st["degrade"].weights == dc.pretrained(p.degrade) and st["degrade"].params["config"] == dc.key_config(
        p.degrade
    )
    for phase in uc.PHASES:
        s = st[f"sr_{phase}"]
        assert s.params == {"config": uc.key_config(p.sr, phase)} and s.weights == uc.pretrained(p.sr, phase)
        assert s.describe == ", ".join(uc.loss_terms(p.sr, phase))
    assert st["baseline_blind"].weights == ("vgg19", "alexnet") and st["eval"].weights == ("alexnet", "inception")
