"""`srpipe doctor`: device, versions and which pretrained weights are present."""

from __future__ import annotations

import click

from srpipe.cli.options import run_options


@click.command()
@run_options
def doctor(device: str, weights_dir: str | None) -> None:
    """Print device, library versions and which pretrained weights resolve."""
    import platform

    import torch
    from rich.table import Table

    from srpipe import __version__, weights
    from srpipe.cli.console import out

    t = Table(title="srpipe doctor", show_header=False)
    t.add_row("srpipe", __version__)
    t.add_row("python", platform.python_version())
    for mod in ("torch", "torchvision", "cv2", "numpy", "lpips", "pytorch_fid", "safetensors", "rich", "click"):
        try:
            m = __import__(mod)
            t.add_row(mod, str(getattr(m, "__version__", "?")))
        except Exception as e:  # a broken install is exactly what doctor is for
            t.add_row(mod, f"[red]import failed: {e}[/]")
    if torch.cuda.is_available():
        dev = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        t.add_row("device", f"cuda: {dev} (bf16: {torch.cuda.is_bf16_supported()})")
    else:
        t.add_row("device", f"cpu ({torch.get_num_threads()} threads); no CUDA GPU visible")
    t.add_row("hub cache", str(weights.hub_dir()))
    out.print(t)
    w = Table(title="pretrained weights")
    for col in ("name", "file", "used for", "found at"):
        w.add_column(col)
    for name, wf, path in weights.status(weights_dir):
        w.add_row(name, wf.filename, wf.used_for, str(path) if path else f"[yellow]missing[/] ({wf.url})")
    out.print(w)
