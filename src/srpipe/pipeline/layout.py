"""The names the pipeline itself gives things: the cache's files, the run folder's record, the files
and sub-folders of its own stages' cache entries, and the models the upscale stage runs.

What a stage's library function writes is that stage's contract (`srpipe.degrade.contract`,
`srpipe.upscale.contract`), and a pair folder's record is `srpipe.io.pair_folder.PAIRS`; this module
names only what `srpipe.pipeline` adds around them.
"""

from __future__ import annotations

MANIFEST = "manifest.json"  # a cache entry's record, written last: an entry without a valid one is not complete
REGISTRY = "pipelines.json"  # the cache's list of the pipeline files that used it (gc keeps what they refer to)
STAT_CACHE = "statcache.json"  # the cache's file fingerprints by path, size and mtime (srpipe.pipeline.fingerprint)
RUN_RECORD = "run.json"  # the run folder's record: each stage's key, entry, params and inputs
METRICS = "metrics.json"  # the eval entry's scores
REAL = "real"  # upscale entry sub-folder of the real LR sets: real/<set>/lr (inputs: LQ_DIR), real/<set>/<model>
HELD_OUT = "held_out_real"  # the real LR images degrade held out (target domain, no ground truth)
REAL_PAIRS = "real_pairs"  # [inputs] test_pairs: real LR/HR pairs
BICUBIC = "bicubic"  # the upscale entry's folder of bicubic-upscaled LR, the baseline every model has to beat
BASELINE = "baseline_"  # prefix of the baseline stages (baseline_<kind>) and of their models


def baseline_models(kind: str) -> tuple[str, str]:
    """The PSNR- and GAN-phase model names of a baseline kind, as upscale writes them."""
    return f"{BASELINE}{kind}_psnr", f"{BASELINE}{kind}_gan"


def real_set_models(models) -> list[str]:
    """The models compared on real LR: srpipe's PSNR model and each baseline's, then the GAN models."""
    base = [m for m in models if m.startswith(BASELINE)]
    return [m for m in ("psnr", *[b for b in base if b.endswith("_psnr")], "gan") if m in models] + [
        b for b in base if b.endswith("_gan")
    ]
