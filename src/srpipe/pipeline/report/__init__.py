"""`srpipe report RUN_DIR`: one self-contained HTML page about a pipeline run.

Reads ``RUN_DIR/run.json`` and the cache entries it names, and renders whatever exists; a section
whose stage is absent (``[sr] enabled = false``, no ``test_hr``, an entry removed by `gc`) says so
instead of failing. The page opens offline: every image is a PNG ``data:`` URI and the CSS is inline.

- Stage table: key prefix, compute time, cached or not, active losses (`Stage.describe`).
- Degradation realism: the eval stage's ``metrics.json["degradation"]`` (held-out real LR vs the
  test pairs' synthetic LR vs bicubic LR), else the degrade entry's ``degradation.json``.
- Sample grids written during training (DSGAN: bicubic LR | synthetic LR | real LR;
  ESRGAN: bicubic | SR | HR), enlarged with nearest neighbour so pixels stay visible.
- srpipe vs the baselines (the `baseline_<kind>` stages: the same SR recipe trained on bicubic pairs,
  or on Real-ESRGAN's blind-degradation pairs, of the same HR): side-by-side crops of every model on
  the real LR images degrade held out (no ground truth), and their metrics on `[inputs] test_pairs`
  (real pairs) when the run has them. Metrics on test pairs made by srpipe's own generator are
  labelled as fit to the learned degradation.
- What the degradation learner learned, for a pdm run: its kernel picture and statistics
  (`kernel`).
- Super-resolution comparisons: per test image, the same crop of LR, bicubic, every model and the
  HR, enlarged with nearest neighbour. The crop is the window with the most gradient energy in the
  HR, where SR models differ most (flat regions look alike for every model).
- Metric tables, the alpha sweep (alpha 0 = PSNR model, 1 = GAN model; ESRGAN section 3.4) and the
  loss curves, plotted with matplotlib's Agg canvas (no pyplot, no global state).

The page is a Jinja2 template (``pipeline/templates/report.html.j2``) with autoescaping on: run data such
as file names and notes never become markup.

Modules: `collect` (reads the run folder and assembles the page's data), `images` (sample grids,
side-by-side crops), `figures` (the alpha sweep, loss curves), `kernel` (the learned degradation),
`tables` (metric tables, the headline), `models` (model order and names), `render` (the template
and its number filters).
"""

from __future__ import annotations

from pathlib import Path

from srpipe.io.imageio import atomic_write_bytes
from srpipe.pipeline.report.collect import collect
from srpipe.pipeline.report.render import render


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path."""
    run_dir = Path(run_dir)
    page = render(collect(run_dir))
    out = run_dir / "report.html"
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
