"""A folder of LR/HR pairs: ``hr/NAME.png`` and ``lr/NAME.png`` (`GT_DIR` and `LQ_DIR`, the same names)
and `PAIRS`, the record of what made them. make-pairs, its blind mode and the pipeline's bicubic pairs
write one; sr-train, eval's realism table and the report read it.
"""

from __future__ import annotations

PAIRS = "pairs.json"  # what made the pairs (scale, method, one entry per image), written last: a folder without it is unfinished
GT_DIR = "hr"  # the ground-truth (HR) images
LQ_DIR = "lr"  # the low-quality (LR) images, named as their GT; an upscale entry's real sets keep their inputs here too


def pair_files(folder, name: str):
    """(GT path, LQ path) of the pair `name` in a pair folder (pathlib.Path)."""
    return folder / GT_DIR / f"{name}.png", folder / LQ_DIR / f"{name}.png"


def pair_entry(name: str) -> dict:
    """The start of a `PAIRS` entry: the pair's name and its two files, relative to the folder."""
    return {"name": name, "hr": f"{GT_DIR}/{name}.png", "lr": f"{LQ_DIR}/{name}.png"}
