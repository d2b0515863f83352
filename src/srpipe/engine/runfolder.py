"""The folder of a training run: created once, resumed with the same config, refused with another.

`open_run(out_dir, config, restart=...)`: a run folder holds ``config.json`` (the resolved,
result-changing config plus inputs). Rerunning with the same config resumes; another config is
refused unless ``restart`` (then the `clear` files, the run's checkpoints, logs and outputs, are deleted).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from srpipe.config import diff_configs
from srpipe.errors import SrpipeError
from srpipe.io.files import write_json

CONFIG = "config.json"  # the run's record: what it computes, compared on reopening
SPLIT = "split.json"  # which images the run trains on and which it holds out (`TrainingRun.open` writes it)
TB_DIR = "tb"  # TensorBoard event folder of a run: `tensorboard --logdir RUN/tb`


class ConfigChangedError(SrpipeError):
    pass


def open_run(
    out_dir: str | Path,
    config: dict,
    *,
    restart: bool = False,
    clear: tuple[str, ...],
    identity: str | None = None,
) -> Path:
    """Create or reopen a run folder for `config`; refuse a different existing config unless `restart`.

    `identity` (the pipeline's stage key: a hash of exactly what the stage's result depends on)
    replaces the comparison: the folder resumes when its recorded identity is the same, whatever
    else `config` says (settings outside the key, input and cache paths, recorded for information).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SrpipeError(f"--out {out} exists and is not a folder")
    cfg_path = out / CONFIG
    if identity is not None:
        config = {**config, "identity": identity}
    if cfg_path.is_file():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        same = old == config if identity is None else isinstance(old, dict) and old.get("identity") == identity
        if not same:
            if not restart:
                changes = diff_configs(old or {}, config)
                shown = "; ".join(changes[:4]) + (" ..." if len(changes) > 4 else "")
                raise ConfigChangedError(
                    f"{out} holds a run with another config ({shown}); use another --out, "
                    f"or --restart to discard that run"
                )
            for name in (*clear, TB_DIR):
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(cfg_path, config)
    return out
