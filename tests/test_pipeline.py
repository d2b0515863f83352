"""Orchestrator: keys, staleness reasons, reruns, resume, manifest-last, lock, gc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import make_folder
from srpipe.engine import loop
from srpipe.config import RunOptions
from srpipe.errors import SrpipeError, UsageError
from srpipe.pipeline.fingerprint import StatCache, folder_fingerprint
from srpipe.pipeline.run import gc, plan, run_pipeline
from srpipe.pipeline.spec import load_pipeline
from srpipe.pipeline.store import CacheLock, CacheLockedError, Store
from srpipe.engine.runlog import Interrupted

PIPELINE = """
[inputs]
hr = "hr"
real_lr = "lr"
test_hr = "test"

[degrade]
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


def go(root: Path, **kw) -> dict[str, str]:
    rows = run_pipeline(load_pipeline(root / "pipe.toml"), run_dir=root / "run", cache=root / "cache",
                        run=RunOptions(device="cpu"), **kw)
    return {r["stage"]: r["action"] for r in rows}


def states(root: Path) -> dict[str, tuple[str, str]]:
    return {s.stage.name: (s.status, s.reason)
            for s in plan(load_pipeline(root / "pipe.toml"), Store(root / "cache"), root / "run")}


def test_first_run_then_noop_rerun(project):
    assert go(project) == {"degrade": "ran", "pairs": "ran", "test_pairs": "ran"}
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
        s = plan(load_pipeline({str(project / 'pipe.toml')!r}), Store({str(project / 'cache')!r}), None)
        print(s[0].key)
    """).replace("None)", f"__import__('pathlib').Path({str(project / 'run')!r}))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip() for seed in (1, 2)}
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
        return [s if s.name != "pairs" else stages.Stage(s.name, 2, s.params, s.raw, s.deps, s.fn) for s in real(p)]

    monkeypatch.setattr("srpipe.pipeline.run.build_stages", bumped)
    assert states(project)["pairs"] == ("stale", "stage version 1 -> 2")


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
    log = (Path(json.loads((project / "run" / "run.json").read_text())["stages"]["degrade"]["entry"]) / "log.csv")
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
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from srpipe.pipeline.store import CacheLock
        with CacheLock({str(cache)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
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
    with pytest.raises(UsageError, match=r"unknown key\(s\) foo in \[degrade\]"):
        load_pipeline(project / "bad.toml")
    (project / "bad.toml").write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[degrade.config.optim]\nlr = "x"\n')
    with pytest.raises(UsageError, match="optim.lr"):
        load_pipeline(project / "bad.toml")
    (project / "bad.toml").write_text('[inputs]\nreal_lr = "lr"\n')
    with pytest.raises(UsageError, match="hr"):
        load_pipeline(project / "bad.toml")
