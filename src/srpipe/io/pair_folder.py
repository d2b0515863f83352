"""A folder of LR/HR pairs: ``hr/NAME.png`` and ``lr/NAME.png`` (the same names) and `PAIRS`, the record
of what made them. make-pairs, its blind mode and the pipeline's bicubic pairs write one; sr-train,
eval's realism table and the report read it.
"""

from __future__ import annotations

PAIRS = "pairs.json"  # what made the pairs (scale, method, one entry per image), written last: a folder without it is unfinished
