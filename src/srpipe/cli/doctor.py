"""`srpipe doctor`: device, versions and which pretrained weights are present."""

from __future__ import annotations

import click

from srpipe.cli.options import run_options

# import name -> distribution name for importlib.metadata (lpips and rich have no __version__; click
# deprecates its own), or None to ask the module (torch's __version__ names its CUDA build, "+cu130")
_MODULES = {
    "torch": None,
    "torchvision": None,
    "cv2": None,  # opencv-python or opencv-python-headless: ask the module itself
    "numpy": "numpy",
    "PIL": "pillow",
    "lpips": "lpips",
    "pytorch_fid": "pytorch-fid",
    "safetensors": "safetensors",
    "rich": "rich",
    "click": "click",
}


def _version(module, dist: str | None) -> str:
    from importlib import metadata

    if dist is not None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return str(getattr(module, "__version__", "?"))


@click.command()
@run_options
def doctor(device: str, weights_dir: str | None) -> None:
    """Print device, library versions and which pretrained weights resolve."""
    import importlib
    import platform

    import torch
    from rich.markup import escape
    from rich.table import Table

    from srpipe import __version__
    from srpipe.engine import weights
    from srpipe.cli.console import out

    t = Table(title="srpipe doctor", show_header=False)
    t.add_column("what")
    t.add_column("value", overflow="fold")  # paths must stay whole, even on a narrow terminal
    t.add_row("srpipe", __version__)
    t.add_row("python", platform.python_version())
    for mod, dist in _MODULES.items():
        try:
            t.add_row(mod, _version(importlib.import_module(mod), dist))
        except Exception as e:  # a broken install is exactly what doctor is for
            t.add_row(mod, f"[red]import failed:[/] {escape(str(e))}")
    if torch.cuda.is_available():
        dev = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        t.add_row("device", f"cuda: {dev} (bf16: {torch.cuda.is_bf16_supported()})")
    else:
        t.add_row("device", f"cpu ({torch.get_num_threads()} threads); no CUDA GPU visible")
    explicit = weights.explicit_dir(weights_dir)
    t.add_row("weights dir", escape(str(explicit)) if explicit else "(none: --weights-dir / SRPIPE_WEIGHTS_DIR)")
    t.add_row("hub cache", escape(str(weights.hub_dir())))
    out.print(t)
    # One line per file rather than a table: paths and URLs are what the user copies from here, and a
    # table squeezes them into "…" on an 80-column terminal or in a pipe.
    out.print("pretrained weights:")
    for name, wf, path in weights.status(weights_dir):
        if path:
            out.print(f"  {name:<10} [green]found[/]    {escape(str(path))}  ({escape(wf.used_for)})")
        else:
            out.print(
                f"  {name:<10} [yellow]missing[/]  {wf.filename} ({escape(wf.used_for)}): download "
                f"{escape(wf.url)} into {escape(str(explicit or weights.hub_dir()))}"
            )
