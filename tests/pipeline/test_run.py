"""Orchestrator: keys (params, input content, pretrained files), staleness reasons, reruns, resume after
edits and moves, manifest-last, lock, gc; and one run of every stage, SR half and bicubic baseline included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import make_folder
from srpipe.engine import loop
from srpipe.config import RunOptions
from srpipe.errors import SrpipeError, UsageError
from srpipe.pipeline.fingerprint import StatCache, folder_fingerprint
from srpipe.pipeline.run import gc, plan, run_pipeline
from srpipe.pipeline.spec import load_pipeline
from srpipe.pipeline.store import CacheLock, CacheLockedError, Store
from srpipe.engine.signals import Interrupted

PIPELINE = """
[inputs]
hr = "hr"
real_lr = "lr"
test_hr = "test"

[degrade]
method = "dsgan"
preset = "tiny"
[degrade.config.data]
hr_crop = 32
val_fraction = 0.2
[degrade.config.model]
features = 8
res_blocks = 1
d_features = 8
[degrade.config.optim]
batch = 2
iters = 3

[pairs]
cleanup_factor = {cleanup}

[sr]
enabled = false
"""


@pytest.fixture
def project(tmp_path) -> Path:
    make_folder(tmp_path / "hr", 4, (64, 64), seed=1)
    make_folder(tmp_path / "lr", 5, (32, 32), seed=2)
    make_folder(tmp_path / "test", 2, (48, 40), seed=3)
    write(tmp_path, cleanup=1)
    return tmp_path


def write(root: Path, *, cleanup: int) -> Path:
    p = root / "pipe.toml"
    p.write_text(PIPELINE.replace("{cleanup}", str(cleanup)))
    return p


def go(root: Path, *, report: bool = False, **kw) -> dict[str, str]:
    """Run the pipeline; no report unless asked (rendering its plots costs more than these tiny stages)."""
    rows = run_pipeline(
        load_pipeline(root / "pipe.toml"),
        run_dir=root / "run",
        cache=root / "cache",
        run=RunOptions(device="cpu"),
        report=report,
        **kw,
    )
    return {r["stage"]: r["action"] for r in rows}


def states(root: Path) -> dict[str, tuple[str, str]]:
    return {
        s.stage.name: (s.status, s.reason)
        for s in plan(load_pipeline(root / "pipe.toml"), Store(root / "cache"), root / "run")
    }


def test_first_run_then_noop_rerun(project):
    assert go(project, report=True) == {"degrade": "ran", "pairs": "ran", "test_pairs": "ran"}
    assert all(s == "fresh" for s, _ in states(project).values())
    assert go(project) == {"degrade": "cached", "pairs": "cached", "test_pairs": "cached"}
    record = json.loads((project / "run" / "run.json").read_text())
    entry = Path(record["stages"]["pairs"]["entry"])
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["key"] == record["stages"]["pairs"]["key"] and manifest["outputs"]
    assert {o[0] for o in manifest["outputs"]} >= {"pairs.json", "hr/img_00.png", "lr/img_00.png"}
    assert (project / "run" / "report.html").is_file()


def test_keys_are_stable_across_processes(project):
    code = textwrap.dedent(f"""
        from srpipe.pipeline.run import plan
        from srpipe.pipeline.spec import load_pipeline
        from srpipe.pipeline.store import Store
        s = plan(load_pipeline({str(project / "pipe.toml")!r}), Store({str(project / "cache")!r}), None)
        print(s[0].key)
    """).replace("None)", f"__import__('pathlib').Path({str(project / 'run')!r}))")
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout.strip()
        for seed in (1, 2)
    }
    here = plan(load_pipeline(project / "pipe.toml"), Store(project / "cache"), project / "run")[0].key
    assert keys == {here} and len(here) == 64


def test_param_change_reruns_that_stage_and_downstream_only(project):
    go(project)
    write(project, cleanup=2)
    st = states(project)
    assert st["degrade"][0] == "fresh"
    assert st["pairs"][0] == "stale" and "params changed: cleanup_factor: 1 -> 2" in st["pairs"][1]
    assert go(project) == {"degrade": "cached", "pairs": "ran", "test_pairs": "ran"}


def test_input_change_and_upstream_staleness(project):
    go(project)
    make_folder(project / "lr", 1, (32, 32), seed=9, prefix="new")
    st = states(project)
    assert st["degrade"] == ("stale", "input real_lr changed")
    assert st["pairs"] == ("stale", "upstream degrade will rerun")
    go(project)
    assert all(s == "fresh" for s, _ in states(project).values())


def test_forced_upstream_rerun_makes_downstream_stale(project):
    go(project)
    assert go(project, force=("degrade",)) == {"degrade": "ran", "pairs": "ran", "test_pairs": "ran"}
    with pytest.raises(SrpipeError, match="no such stage"):
        go(project, force=("nope",))


def test_version_bump_is_a_staleness_reason(project, monkeypatch):
    go(project)
    from srpipe.pipeline import stages

    real = stages.build_stages

    def bumped(p):
        return [s if s.name != "pairs" else replace(s, version=2) for s in real(p)]

    monkeypatch.setattr("srpipe.pipeline.run.build_stages", bumped)
    assert states(project)["pairs"] == ("stale", "stage version 1 -> 2")


def test_stages_are_built_once_per_call(project, monkeypatch):
    """plan, a dry run and a run each build the stages once, and every key comes from one function."""
    from srpipe.pipeline import run, stages

    built, keyed = [], []
    real_build, real_identity = stages.build_stages, run.stage_identity
    monkeypatch.setattr(run, "build_stages", lambda p: built.append(1) or real_build(p))
    monkeypatch.setattr(run, "stage_identity", lambda *a: keyed.append(a[0].name) or real_identity(*a))
    assert go(project, dry_run=True) == {"degrade": "run", "pairs": "run", "test_pairs": "run"}
    assert len(built) == 1 and keyed == ["degrade", "pairs", "test_pairs"]
    assert go(project) == {"degrade": "ran", "pairs": "ran", "test_pairs": "ran"}
    assert len(built) == 2 and keyed[3:] == ["degrade", "pairs", "test_pairs"]
    plan(load_pipeline(project / "pipe.toml"), Store(project / "cache"), project / "run")
    assert len(built) == 3 and len(keyed) == 9


def test_interrupted_stage_resumes_from_its_checkpoints(project, monkeypatch, caplog):
    class StopAtStep2:
        calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *a):
            pass

        def __bool__(self):
            StopAtStep2.calls += 1
            return StopAtStep2.calls >= 2

    monkeypatch.setattr(loop, "StopFlag", StopAtStep2)
    with pytest.raises(Interrupted):
        go(project)
    st = states(project)
    assert st["degrade"] == ("stale", "interrupted; will resume from its checkpoints")
    monkeypatch.undo()
    caplog.clear()
    assert go(project)["degrade"] == "ran"
    err = caplog.text
    assert "degrade: resuming" in err and "at step 2/3" in err
    log = Path(json.loads((project / "run" / "run.json").read_text())["stages"]["degrade"]["entry"]) / "log.csv"
    steps = [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 3  # logged every 10 steps + first + last


def test_a_folder_without_valid_manifest_is_not_complete(project):
    go(project)
    record = json.loads((project / "run" / "run.json").read_text())
    entry = Path(record["stages"]["test_pairs"]["entry"])
    (entry / "manifest.json").write_text("{truncated")
    assert states(project)["test_pairs"][0] == "stale"
    assert go(project)["test_pairs"] == "ran"
    (entry / "manifest.json").unlink()
    assert go(project)["test_pairs"] == "ran"


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(project, capsys):
    cache = project / "cache"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from srpipe.pipeline.store import CacheLock
        with CacheLock({str(cache)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CacheLockedError, match=f"pid {holder.pid}"):
            go(project)
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: its pid is still in the file, the kernel lock is gone.
    assert f"pid {holder.pid}" in (cache / "lock").read_text()
    msgs = []
    with CacheLock(cache, warn=msgs.append):
        pass
    assert msgs and "stale lock" in msgs[0]
    assert (cache / "lock").read_text() == ""  # a clean release leaves nothing to take over
    go(project)


def test_gc_removes_only_unreferenced_entries(project):
    go(project)
    write(project, cleanup=2)
    go(project)
    store = Store(project / "cache")
    before = {(s, k) for s, k, _ in store.entries()}
    assert len([s for s, _ in before if s == "pairs"]) == 2
    removed = gc(project / "cache", [], dry_run=False)
    after = {(s, k) for s, k, _ in store.entries()}
    assert len(removed) == 2 and len(after) == len(before) - 2  # old pairs + old test_pairs
    assert all(s == "fresh" for s, _ in states(project).values())


def test_stat_cache_avoids_rereading_unchanged_folders(project):
    sc = StatCache(project / "sc.json")
    a = folder_fingerprint(project / "hr", sc)
    sc.save()
    assert sc.reads == 4
    sc2 = StatCache(project / "sc.json")
    assert folder_fingerprint(project / "hr", sc2) == a and sc2.reads == 0
    (project / "hr" / "img_00.png").write_bytes((project / "hr" / "img_01.png").read_bytes())
    assert folder_fingerprint(project / "hr", sc2) != a and sc2.reads == 1


def test_pipeline_file_errors(project):
    (project / "bad.toml").write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[degrade]\npreset = "tiny"\nfoo = 1\n')
    with pytest.raises(UsageError, match=r"bad.toml: unknown config key degrade\.foo in \[degrade\]"):
        load_pipeline(project / "bad.toml")
    (project / "bad.toml").write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[degrade.config.optim]\nlr = "x"\n')
    with pytest.raises(UsageError, match="optim.lr"):
        load_pipeline(project / "bad.toml")
    (project / "bad.toml").write_text('[inputs]\nreal_lr = "lr"\n')
    with pytest.raises(UsageError, match="hr"):
        load_pipeline(project / "bad.toml")


def test_degrade_method_and_baseline_kinds_parsing(project, monkeypatch):
    from srpipe.degrade import config

    def load(text: str):
        (project / "p.toml").write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n' + text)
        return load_pipeline(project / "p.toml")

    p = load("")
    assert p.method == config.DEFAULT_METHOD and p.baselines == ("bicubic", "blind")
    monkeypatch.setattr(config, "DEFAULT_METHOD", "pdm" if config.DEFAULT_METHOD == "dsgan" else "dsgan")
    if hasattr(config, "PDMConfig"):  # the one constant decides the pipeline's default
        assert load("").method == config.DEFAULT_METHOD
    monkeypatch.undo()
    assert type(load('[degrade]\nmethod = "dsgan"\npreset = "tiny"\n').degrade) is config.DegradeConfig
    if hasattr(config, "PDMConfig"):  # the method picks the config class its overrides go to
        assert type(load('[degrade]\nmethod = "pdm"\npreset = "tiny"\n').degrade) is config.PDMConfig
        with pytest.raises(UsageError, match="loss.hp_gain"):  # a DSGAN key is not a PDM key (or vice versa)
            load('[degrade]\nmethod = "pdm"\n[degrade.config.loss]\nhp_gain = 2.0\n')
    with pytest.raises(UsageError, match=r"method must be one of dsgan, pdm, got 'esrgan'"):
        load('[degrade]\nmethod = "esrgan"\n')
    assert load("[baseline]\nbicubic = false\n").baselines == ()  # the older spelling still works
    assert load("[baseline]\nbicubic = true\n").baselines == ("bicubic",)
    p = load('[baseline]\nkinds = ["blind"]\n[baseline.blind]\ndraws = 3\nseed = 7\n')
    assert (p.baselines, p.blind_draws, p.blind_seed) == (("blind",), 3, 7)
    assert load("[baseline]\nkinds = []\n").baselines == ()
    assert load("[sr]\nenabled = false\n").baselines == ()  # nothing to compare without SR
    for text, msg in (
        ('[baseline]\nkinds = ["bicubic"]\nbicubic = true\n', "has both kinds and bicubic; keep kinds only"),
        ('[baseline]\nkinds = ["nearest"]\n', r"baseline\.kinds\[0\]: 'nearest' is not one of 'bicubic', 'blind'"),
        ('[baseline]\nkinds = ["blind", "blind"]\n', "lists a kind twice"),
        ("[baseline.blind]\ndraws = 0\n", "draws must be >= 1"),
        ("[baseline.blind]\nsigma = 2\n", r"unknown config key baseline\.blind\.sigma in \[baseline\.blind\]"),
    ):
        with pytest.raises(UsageError, match=msg):
            load(text)


# ---------------------------------------------------------------- every stage, SR half included

SR_PIPELINE = """
[inputs]
hr = "hr"
real_lr = "lr"
test_hr = "test"
test_pairs = "real_pairs"

[degrade]
method = "dsgan"
preset = "tiny"
[degrade.config.data]
hr_crop = 32
val_fraction = 0.2
[degrade.config.model]
features = 8
res_blocks = 1
d_features = 8
[degrade.config.optim]
batch = 2
iters = 3

[sr]
preset = "tiny"
[sr.config]
batch = 2
[sr.config.data]
hr_patch = 32
val_fraction = 0.25
[sr.config.model]
num_feat = 8
num_block = 1
num_grow_ch = 8
d_features = 8
[sr.config.psnr]
iters = {psnr_iters}
[sr.config.gan]
iters = 3
w_adv = {w_adv}

[baseline]
kinds = {kinds}
[baseline.blind]
draws = 2
seed = {blind_seed}

[interpolate]
alphas = [0.5]

[upscale]
tile = 32

[eval]
fid = false
"""
ALL_STAGES = [
    "degrade",
    "pairs",
    "test_pairs",
    "sr_psnr",
    "sr_gan",
    "interpolate",
    "bicubic_pairs",
    "baseline_bicubic",
    "blind_pairs",
    "baseline_blind",
    "upscale",
    "eval",
]
BASELINE_MODELS = ["baseline_bicubic_gan", "baseline_bicubic_psnr", "baseline_blind_gan", "baseline_blind_psnr"]


def write_sr(
    root: Path,
    *,
    psnr_iters: int = 4,
    w_adv: float = 0.005,
    kinds=("bicubic", "blind"),
    blind_seed: int = 0,
    name="pipe.toml",
) -> Path:
    p = root / name
    p.write_text(
        SR_PIPELINE.replace("{psnr_iters}", str(psnr_iters))
        .replace("{w_adv}", str(w_adv))
        .replace("{kinds}", json.dumps(list(kinds)))
        .replace("{blind_seed}", str(blind_seed))
    )
    return p


def sr_project(root: Path) -> Path:
    make_folder(root / "hr", 4, (64, 64), seed=1)
    make_folder(root / "lr", 5, (32, 32), seed=2)  # val_fraction 0.2: one real LR image held out
    make_folder(root / "test", 2, (64, 64), seed=3)  # realism statistics need LR of 16 px or more
    make_folder(root / "real_pairs" / "hr", 2, (48, 48), seed=4)
    for f in sorted((root / "real_pairs" / "hr").iterdir()):  # "real" LR: a blur and a box downscale
        from PIL import Image, ImageFilter

        with Image.open(f) as im:
            lr = im.filter(ImageFilter.GaussianBlur(1.0)).resize((12, 12), Image.BOX)
        (root / "real_pairs" / "lr").mkdir(exist_ok=True)
        lr.save(root / "real_pairs" / "lr" / f.name)
    write_sr(root)
    return root


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One run of every stage on tiny inputs (no pretrained weights: LPIPS and Inception absent)."""
    root = sr_project(tmp_path_factory.mktemp("full"))
    with pytest.MonkeyPatch.context() as mp:
        home = root / "torch_home"
        (home / "hub").mkdir(parents=True)
        mp.setenv("TORCH_HOME", str(home))
        mp.setenv("SRPIPE_OFFLINE", "1")
        mp.delenv("SRPIPE_WEIGHTS_DIR", raising=False)
        first = go(root, report=True)
        second = go(root)
    return root, first, second


def entry_of(root: Path, stage: str) -> Path:
    return Path(json.loads((root / "run" / "run.json").read_text())["stages"][stage]["entry"])


@pytest.mark.slow
def test_every_stage_runs_then_all_are_cached(full_run):
    root, first, second = full_run
    assert first == dict.fromkeys(ALL_STAGES, "ran")
    assert second == dict.fromkeys(ALL_STAGES, "cached")
    up = entry_of(root, "upscale")
    models = sorted(["alpha_0.50", *BASELINE_MODELS, "bicubic", "gan", "psnr"])
    assert sorted(p.name for p in up.iterdir() if p.is_dir() and p.name != "real") == models
    for m in models:  # every model upscaled every test image, x4
        assert sorted(f.name for f in (up / m).iterdir()) == ["img_00.png", "img_01.png"]
    held = json.loads((entry_of(root, "degrade") / "split.json").read_text())["held_out"]
    assert len(held) == 1
    real = up / "real" / "held_out_real"
    assert sorted(p.name for p in real.iterdir()) == sorted([*BASELINE_MODELS, "bicubic", "gan", "lr", "psnr"])
    assert (real / "lr" / held[0]).read_bytes() == (root / "lr" / held[0]).read_bytes()
    from PIL import Image

    with Image.open(real / "baseline_blind_psnr" / held[0]) as im:
        assert im.size == (128, 128)
    metrics = json.loads((entry_of(root, "eval") / "metrics.json").read_text())
    assert sorted(metrics["sr"]) == models
    assert sorted(metrics["real_pairs"]["sr"]) == sorted([*BASELINE_MODELS, "bicubic", "gan", "psnr"])
    assert all(len(v) == 2 for v in metrics["real_pairs"]["per_image"].values())
    assert metrics["held_out_real"] == held
    assert metrics["sr"]["psnr"]["lpips"] is None  # no AlexNet here, said in a note
    assert any("LPIPS" in n for n in metrics["notes"])
    # the bicubic baseline is trained on bicubic pairs of the very HR images of the realistic pairs
    pairs, bic = entry_of(root, "pairs"), entry_of(root, "bicubic_pairs")
    assert sorted(f.name for f in (bic / "hr").iterdir()) == sorted(f.name for f in (pairs / "hr").iterdir())
    for f in (pairs / "hr").iterdir():
        assert (bic / "hr" / f.name).read_bytes() == f.read_bytes()
    blind = json.loads((entry_of(root, "blind_pairs") / "pairs.json").read_text())
    assert blind["method"] == "blind" and len(blind["pairs"]) == 2 * len(list((pairs / "hr").iterdir()))
    for kind in ("bicubic", "blind"):  # each baseline: the sr recipe, both phases, on its own pairs
        base = entry_of(root, f"baseline_{kind}")
        assert (base / "psnr.safetensors").is_file() and (base / "gan.safetensors").is_file()
        cfg = json.loads((base / "config.json").read_text())
        assert cfg["inputs"]["pairs"] == str(entry_of(root, f"{kind}_pairs")) and cfg["identity"] == base.name
        assert cfg["config"] == json.loads((entry_of(root, "sr_gan") / "config.json").read_text())["config"]


def plan_of(root: Path, name: str, **kw) -> dict:
    return {
        s.stage.name: s
        for s in plan(load_pipeline(write_sr(root, name=name, **kw)), Store(root / "cache"), root / "run")
    }


@pytest.mark.slow
def test_baseline_off_and_sr_param_changes(full_run, tmp_path):
    root, _, _ = full_run
    st = plan_of(root, "nobase.toml", kinds=())
    assert not any(n.endswith("_pairs") and n not in ("pairs", "test_pairs") or "baseline" in n for n in st)
    assert [st[n].status for n in ("degrade", "pairs", "sr_psnr", "sr_gan", "interpolate")] == ["fresh"] * 5
    recorded = json.loads((root / "run" / "run.json").read_text())["stages"]["upscale"]["key"]
    assert st["upscale"].status == "stale" and st["upscale"].key != recorded  # fewer models: another key
    st = {n: (s.status, s.reason) for n, s in plan_of(root, "p5.toml", psnr_iters=5).items()}
    assert st["bicubic_pairs"] == st["blind_pairs"] == st["pairs"] == ("fresh", "cached")
    assert st["sr_psnr"][0] == "stale" and "psnr.iters: 4 -> 5" in st["sr_psnr"][1]
    for kind in ("bicubic", "blind"):  # the sr recipe changed: every baseline retrains
        assert st[f"baseline_{kind}"][0] == "stale" and "psnr.iters: 4 -> 5" in st[f"baseline_{kind}"][1]
    st = {n: s.status for n, s in plan_of(root, "gan.toml", w_adv=0.01).items()}
    assert st["sr_psnr"] == "fresh" and st["sr_gan"] == st["baseline_bicubic"] == st["baseline_blind"] == "stale"


@pytest.mark.slow
def test_baseline_kinds_are_separate_cached_stages(full_run, tmp_path):
    """The blind seed changes the blind pairs and baseline only; a rerun retrains that one alone."""
    root, _, second = full_run
    assert second["baseline_bicubic"] == second["baseline_blind"] == "cached"
    work = tmp_path / "seed"
    shutil.copytree(root, work, symlinks=True)  # the module's run stays as it was for the other tests
    for f in work.glob("*.toml"):
        f.unlink()
    st = {n: (s.status, s.reason) for n, s in plan_of(work, "pipe.toml", blind_seed=1).items()}
    assert st["blind_pairs"][0] == "stale" and "seed: 0 -> 1" in st["blind_pairs"][1]
    assert st["baseline_blind"] == ("stale", "upstream blind_pairs will rerun")
    assert st["bicubic_pairs"] == st["baseline_bicubic"] == st["sr_gan"] == ("fresh", "cached")
    actions = go(work)
    assert [s for s, a in actions.items() if a == "ran"] == ["blind_pairs", "baseline_blind", "upscale", "eval"]
    write_sr(work, kinds=["blind"])  # one kind only: the bicubic stages leave the pipeline, blind's stay cached
    actions = go(work)
    assert "baseline_bicubic" not in actions and actions["baseline_blind"] == "cached"


@pytest.mark.slow
def test_pretrained_files_are_part_of_the_keys(full_run, torch_home):
    """A stage run without a pretrained file is stale once the file arrives (and after it changes)."""
    root, _, _ = full_run
    p = load_pipeline(root / "pipe.toml")
    st = {s.stage.name: (s.status, s.reason) for s in plan(p, Store(root / "cache"), root / "run")}
    assert st["degrade"] == ("stale", "pretrained inception now present")  # degradation.json's KID/FID
    assert st["bicubic_pairs"] == st["blind_pairs"] == ("fresh", "cached")  # use no pretrained file
    assert st["baseline_blind"] == ("stale", "pretrained alexnet now present")  # best.json picks by LPIPS
    st = {s.stage.name: s for s in plan(p, Store(root / "cache"), root / "run")}
    from srpipe.engine import weights

    ids = {s: st[s].inputs for s in ("sr_gan", "baseline_bicubic", "eval")}
    for s in ids:
        assert ids[s]["pretrained alexnet"] == weights.identity("alexnet")
    assert "pretrained vgg19" not in ids["sr_gan"]  # the tiny preset's GAN phase has no perceptual loss
    assert ids["sr_gan"]["pretrained alexnet"] == folder_fingerprint_sha(
        torch_home / "hub" / "checkpoints" / weights.FILES["alexnet"].filename
    )


def folder_fingerprint_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_report_compares_both_models_on_held_out_real_lr(full_run):
    from tests.pipeline.test_report import check_self_contained, decode

    root, _, _ = full_run
    text = (root / "run" / "report.html").read_text()
    page = check_self_contained(text)
    assert "real" in page.sections
    held = json.loads((entry_of(root, "degrade") / "split.json").read_text())["held_out"]
    stem = Path(held[0]).stem
    alts = [i["alt"] for i in page.images if i["alt"].startswith(f"real {stem}: ")]
    assert alts == [
        f"real {stem}: {a}"
        for a in (
            "LR input",
            "bicubic",
            "srpipe PSNR model",
            "bicubic-pair PSNR model",
            "blind-pair PSNR model",
            "srpipe GAN model",
            "bicubic-pair GAN model",
            "blind-pair GAN model",
        )
    ]
    crops = [decode(i["src"]) for i in page.images if i["alt"] in alts]
    assert len({c.size for c in crops}) == 1 and crops[0].width >= 64
    assert "fit to the learned degradation" in text
    assert "Real pairs (ground truth, 2 images)" in text


@pytest.mark.slow
def test_psnr_stage_resumes_after_a_gan_only_edit_and_a_cache_move(tmp_path, monkeypatch, caplog):
    """Its key leaves the GAN settings out; its run folder must not refuse them (nor moved paths)."""

    root = sr_project(tmp_path)
    write_sr(root, kinds=())

    class StopAtStep2:
        """Stops the 2nd training loop (sr_psnr; the 1st is degrade's) and the 4th (sr_gan) at their second step."""

        made = 0

        def __init__(self):
            StopAtStep2.made += 1
            self.nth, self.calls = StopAtStep2.made, 0

        def __enter__(self):
            return self

        def __exit__(self, *a):
            pass

        def __bool__(self):
            self.calls += 1
            return self.nth in (2, 4) and self.calls >= 2

    monkeypatch.setattr(loop, "StopFlag", StopAtStep2)
    with pytest.raises(Interrupted, match="psnr phase at step 2"):
        go(root)
    write_sr(root, kinds=(), w_adv=0.01)  # a GAN-phase setting: not in sr_psnr's key
    (root / "cache").rename(root / "moved-cache")
    caplog.clear()
    with pytest.raises(Interrupted, match="gan phase at step 2"):  # sr_psnr completed, sr_gan started
        run_pipeline(
            load_pipeline(root / "pipe.toml"),
            run_dir=root / "run",
            cache=root / "moved-cache",
            run=RunOptions(device="cpu"),
            report=False,
        )
    err = caplog.text
    assert "sr_psnr: resuming" in err and "resuming the psnr phase" in err and "at step 2/4" in err
    st = {
        s.stage.name: s.status
        for s in plan(load_pipeline(root / "pipe.toml"), Store(root / "moved-cache"), root / "run")
    }
    assert st["sr_psnr"] == "fresh" and st["sr_gan"] == "stale"


def test_interrupted_stage_resumes_after_its_inputs_and_the_cache_moved(project, monkeypatch, caplog):
    class StopAtStep2:
        calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *a):
            pass

        def __bool__(self):
            StopAtStep2.calls += 1
            return StopAtStep2.calls >= 2

    monkeypatch.setattr(loop, "StopFlag", StopAtStep2)
    with pytest.raises(Interrupted):
        go(project)
    monkeypatch.undo()
    for name in ("hr", "lr", "test", "cache"):
        (project / name).rename(project / f"{name}-moved")
    text = (project / "pipe.toml").read_text()
    for name in ("hr", "lr", "test"):
        text = text.replace(f'= "{name}"', f'= "{name}-moved"')
    (project / "pipe.toml").write_text(text)
    caplog.clear()
    rows = run_pipeline(
        load_pipeline(project / "pipe.toml"),
        run_dir=project / "run",
        cache=project / "cache-moved",
        run=RunOptions(device="cpu"),
        report=False,
    )
    assert {r["stage"]: r["reason"] for r in rows}["degrade"] == "resumed"
    assert "at step 2/3" in caplog.text


def test_fingerprint_covers_exactly_what_the_readers_list(project):
    from srpipe.io.imageio import list_images

    hr = project / "hr"
    before = folder_fingerprint(hr)
    (hr / "sub").mkdir()
    (hr / "sub" / "unread.png").write_bytes((hr / "img_00.png").read_bytes())
    (hr / "notes.txt").write_text("not an image")
    assert folder_fingerprint(hr) == before  # nothing reads these
    (hr / ".dotted.png").write_bytes((hr / "img_01.png").read_bytes())
    assert hr / ".dotted.png" in list_images(hr)  # the readers take it ...
    assert folder_fingerprint(hr) != before  # ... so the key does too
