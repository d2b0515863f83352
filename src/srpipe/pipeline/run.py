"""Plan, run, report status of, and garbage-collect a cached pipeline.

For each stage, in order: fingerprint its raw inputs (content hashes, stat-cached) and its upstream
stages (their completed outputs), hash that with its params and version into a key, and look for
`<cache>/<stage>/<key[:2]>/<key>/manifest.json`. Present: cached, nothing to do. Absent: run the
stage in that folder (resuming whatever checkpoints an interrupted attempt left there), then write
the manifest last. The run folder records which key each stage had, so `status` can say why a stage
is stale (DVC's order: version and params first, they are cheap; then inputs).

`stage_identity` makes every key: `plan` (and so `status` and `gc`) and `run_pipeline` all call it,
on stages built once per call.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from srpipe import __version__
from srpipe.config import RunOptions, diff_configs
from srpipe.errors import SrpipeError
from srpipe.log import info, warn
from srpipe.pipeline.fingerprint import folder_fingerprint, stage_key
from srpipe.pipeline.layout import REGISTRY, RUN_RECORD
from srpipe.pipeline.spec import Pipeline
from srpipe.pipeline.stages import Context, Stage, build_stages
from srpipe.pipeline.store import CacheLock, Store, outputs_fingerprint, reset_entry, write_manifest
from srpipe.io.files import write_json


def default_cache() -> Path:
    return Path(os.environ.get("SRPIPE_CACHE", ".srpipe/cache"))


@dataclass
class StageState:
    stage: Stage
    key: str | None = None  # None: not computable yet (an upstream stage has no outputs)
    inputs: dict = field(default_factory=dict)  # name -> fingerprint
    status: str = "missing"  # fresh | stale | missing
    reason: str = ""
    manifest: dict | None = None
    entry: Path | None = None  # the cache folder under `key`


def _previous(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / RUN_RECORD).read_text()).get("stages", {})
    except (OSError, json.JSONDecodeError):
        return {}


def _why_stale(stage: Stage, inputs: dict, old: dict | None, pending: list[str]) -> tuple[str, str]:
    """(status, reason) for a stage without a complete entry under its current key."""
    if old is None:
        if pending:
            return "missing", f"after {', '.join(pending)}"
        return "missing", "never run"
    if old.get("version") != stage.version:
        return "stale", f"stage version {old.get('version')} -> {stage.version}"
    if old.get("params") != stage.params:
        changes = diff_configs(old.get("params") or {}, stage.params)
        return "stale", "params changed: " + "; ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")
    if pending:
        return "stale", f"upstream {', '.join(pending)} will rerun"
    before = old.get("inputs", {})
    changed = sorted(k for k in set(inputs) | set(before) if inputs.get(k) != before.get(k))
    if changed:
        kinds = [
            f"upstream {k} reran" if k in stage.deps else _input_change(k, before.get(k), inputs.get(k))
            for k in changed
        ]
        return "stale", "; ".join(kinds)
    return "stale", "output missing or incomplete (interrupted?)"


def _input_change(name: str, old, new) -> str:
    if name.startswith(PRETRAINED):
        what = name[len(PRETRAINED) :]
        if old == "absent":
            return f"pretrained {what} now present"
        return f"pretrained {what} {'now absent' if new == 'absent' else 'file changed'}"
    return f"input {name} changed"


PRETRAINED = "pretrained "  # prefix of the weight identities among a stage's inputs


def own_inputs(stage: Stage, store: Store, weights_dir: str = "") -> dict[str, str]:
    """What a stage's key holds besides params and upstream outputs: the content of its raw inputs and
    the identity (sha256, or "absent") of each pretrained file it uses, resolved as the stage will."""
    from srpipe.engine.weights import identity

    inputs = {name: folder_fingerprint(path, store.stat_cache) for name, path in stage.raw.items()}
    for w in stage.weights:
        inputs[PRETRAINED + w] = identity(w, weights_dir or None, sha256=store.stat_cache.sha256)
    return inputs


def _record(run_dir: Path, p: Pipeline, store: Store, states: list[StageState], results: dict) -> None:
    stages = {}
    for s in states:
        if s.key is None:
            continue
        stages[s.stage.name] = {
            "key": s.key,
            "entry": str(store.entry(s.stage.name, s.key)),
            "version": s.stage.version,
            "params": s.stage.params,
            "inputs": s.inputs,
            "describe": s.stage.describe,
            **results.get(s.stage.name, {}),
        }
    write_json(
        run_dir / RUN_RECORD,
        {"pipeline": str(p.path), "cache": str(store.root.resolve()), "srpipe": __version__, "stages": stages},
    )


def _register(store: Store, pipeline_path: Path) -> None:
    """Remember pipeline files that used this cache, so `gc` knows what is still referred to."""
    reg = store.root / REGISTRY
    try:
        known = json.loads(reg.read_text())
    except (OSError, json.JSONDecodeError):
        known = []
    if str(pipeline_path) not in known:
        write_json(reg, sorted([*known, str(pipeline_path)]))


def stage_identity(
    stage: Stage, store: Store, weights_dir: str, upstream: dict[str, dict | None]
) -> tuple[str | None, dict, list[str]]:
    """(key, inputs, pending upstream stages) of `stage`, the one place a key is made (`plan`, `status`,
    `gc` and `run_pipeline` all come here). `upstream` maps each dependency to its complete manifest,
    None while it has none (or will rerun): the key is then None, it depends on outputs not made yet."""
    inputs = own_inputs(stage, store, weights_dir)
    pending = []
    for dep in stage.deps:
        manifest = upstream.get(dep)
        if manifest is None:
            pending.append(dep)
        else:
            inputs[dep] = outputs_fingerprint(manifest)
    key = None if pending else stage_key(stage.name, stage.version, stage.params, inputs)
    return key, inputs, pending


def plan(
    p: Pipeline, store: Store, run_dir: Path, *, force: frozenset[str] = frozenset(), weights_dir: str = ""
) -> list[StageState]:
    """The state of every stage, without running anything."""
    return plan_stages(build_stages(p), store, run_dir, force=force, weights_dir=weights_dir)


def plan_stages(
    stages: list[Stage], store: Store, run_dir: Path, *, force: frozenset[str] = frozenset(), weights_dir: str = ""
) -> list[StageState]:
    """`plan` of stages already built."""
    prev = _previous(run_dir)
    states: dict[str, StageState] = {}
    for stage in stages:
        # a forced stage will rerun: what depends on it waits for its new outputs
        upstream = {d: None if d in force else states[d].manifest for d in stage.deps}
        key, inputs, pending = stage_identity(stage, store, weights_dir, upstream)
        s = states[stage.name] = StageState(stage, key, inputs)
        if key is not None:
            s.manifest = store.manifest(stage.name, key)
        if s.manifest is not None and stage.name not in force:
            s.status, s.reason = "fresh", "cached"
        elif s.manifest is not None:
            s.status, s.reason = "stale", "forced"
        elif key is not None and store.entry(stage.name, key).exists():
            s.status, s.reason = "stale", "interrupted; will resume from its checkpoints"
        else:
            old = prev.get(stage.name)
            old_manifest = store.manifest(stage.name, old["key"]) if old and old.get("key") else None
            s.status, s.reason = _why_stale(stage, inputs, old_manifest or old, pending)
    store.stat_cache.save()
    return list(states.values())


def run_pipeline(
    p: Pipeline,
    *,
    run_dir: str | Path,
    cache: str | Path | None = None,
    run: RunOptions = RunOptions(),
    force: tuple[str, ...] = (),
    dry_run: bool = False,
    report: bool = True,
) -> list[dict]:
    """Bring every stage up to date; returns one row per stage (name, key, action, seconds, reason)."""
    run_dir = Path(run_dir)
    store = Store(cache or default_cache())
    stages = build_stages(p)
    names = [s.name for s in stages]
    unknown = sorted(set(force) - set(names))
    if unknown:
        raise SrpipeError(f"--force {', '.join(unknown)}: no such stage; stages are {', '.join(names)}")
    if dry_run:
        states = plan_stages(stages, store, run_dir, force=frozenset(force), weights_dir=run.weights_dir)
        return [_row(s, "run" if s.status != "fresh" else "cached", 0.0, s.reason) for s in states]
    rows = []
    with CacheLock(store.root, warn=warn):
        _register(store, p.path)
        run_dir.mkdir(parents=True, exist_ok=True)
        done: dict[str, StageState] = {}
        results: dict[str, dict] = {}
        for stage in stages:
            state, row, results[stage.name] = _bring_up_to_date(stage, store, done, run, stage.name in force)
            rows.append(row)
            done[stage.name] = state
            _record(run_dir, p, store, list(done.values()), results)
        store.stat_cache.save()
    if report:
        from srpipe.pipeline.report import write_report

        path = write_report(run_dir)
        info(f"report: {path}")
    return rows


def _row(state: StageState, action: str, seconds: float, reason: str) -> dict:
    return {"stage": state.stage.name, "key": state.key, "action": action, "seconds": seconds, "reason": reason}


def _bring_up_to_date(
    stage: Stage, store: Store, done: dict[str, StageState], run: RunOptions, forced: bool
) -> tuple[StageState, dict, dict]:
    """Skip `stage` if its entry is complete (and not forced), else run it there: (its state, its row of
    `run_pipeline`'s result, what run.json adds about this run of it)."""
    # Its upstream stages are complete now (`done`): their outputs define its key.
    key, inputs, _ = stage_identity(stage, store, run.weights_dir, {d: done[d].manifest for d in stage.deps})
    state = StageState(stage, key, inputs, entry=store.entry(stage.name, key))
    manifest = store.manifest(stage.name, key)
    if manifest is not None and not forced:
        info(f"{stage.name}: cached ({key[:12]}), skipping")
        state.manifest, state.status = manifest, "fresh"
        return state, _row(state, "cached", 0.0, "unchanged"), {"cached": True, "seconds": manifest.get("seconds", 0.0)}
    if forced:
        reset_entry(state.entry)
    resumed = state.entry.exists()
    info(f"{stage.name}: {'resuming' if resumed else 'running'} in {state.entry}")
    state.entry.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=state.entry, inputs={**stage.raw, **{d: done[d].entry for d in stage.deps}}, run=run, key=key)
    t0 = time.time()
    summary = stage.fn(ctx)
    seconds = time.time() - t0
    state.manifest = write_manifest(
        state.entry,
        {
            "key": key,
            "stage": stage.name,
            "version": stage.version,
            "params": stage.params,
            "inputs": inputs,
            "seconds": round(seconds, 3),
            "summary": summary,
            "describe": stage.describe,
            "versions": _versions(),
        },
    )
    state.status = "fresh"
    reason = "forced" if forced else ("resumed" if resumed else "")
    return state, _row(state, "ran", seconds, reason), {"cached": False, "seconds": seconds}


def _versions() -> dict:
    import platform

    import torch

    return {"srpipe": __version__, "torch": torch.__version__, "python": platform.python_version()}


def gc(
    store_root: str | Path | None = None,
    pipelines: list[Pipeline] = (),
    *,
    dry_run: bool = False,
    weights_dir: str = "",
) -> list[Path]:
    """Remove cache entries that no known pipeline file refers to (their current keys, with the
    pretrained files as `weights_dir` and the hub cache resolve them now)."""
    import shutil

    from srpipe.pipeline.spec import load_pipeline

    store = Store(store_root or default_cache())
    keep: set[tuple[str, str]] = set()
    with CacheLock(store.root, warn=warn):
        try:
            known = json.loads((store.root / REGISTRY).read_text())
        except (OSError, json.JSONDecodeError):
            known = []
        all_pipelines = list(pipelines)
        for path in known:
            if Path(path).is_file() and all(str(q.path) != path for q in all_pipelines):
                try:
                    all_pipelines.append(load_pipeline(path))
                except SrpipeError as e:
                    warn(f"gc: ignoring {path}: {e}")
        for q in all_pipelines:
            for s in plan(q, store, Path("/nonexistent"), weights_dir=weights_dir):
                if s.key:
                    keep.add((s.stage.name, s.key))
        removed = []
        for stage, key, folder in list(store.entries()):
            if (stage, key) not in keep:
                removed.append(folder)
                if not dry_run:
                    shutil.rmtree(folder)
        if not dry_run:
            write_json(store.root / REGISTRY, sorted(str(q.path) for q in all_pipelines))
    return removed
