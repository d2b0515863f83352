"""Options shared by computing commands, and turning them into a config + run options."""

from __future__ import annotations

import functools

import click

PRESETS = ("paper", "tiny")


def config_options(f):
    """--preset, --config FILE.toml, --set a.b=v (repeatable)."""

    @click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True,
                  help="Recipe to start from: the published one, or a minutes-on-a-CPU one.")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                  help="TOML file overriding preset values.")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                  help="Override one value, e.g. --set optim.lr=1e-4 (repeatable).")
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper


def run_options(f):
    """--device and --weights-dir, which change how but not what is computed."""

    @click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
    @click.option("--weights-dir", type=click.Path(file_okay=False), default=None, envvar="SRPIPE_WEIGHTS_DIR",
                  help="Folder searched first for pretrained backbone files (VGG19, AlexNet, Inception).")
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper


def build(cls, presets: dict, preset: str, config_file: str | None, sets: tuple[str, ...]):
    """The stage config: dataclass defaults < preset < TOML < --set."""
    from srpipe.config import build_config, read_toml

    toml = read_toml(config_file) if config_file else None
    return build_config(cls, preset=presets[preset], toml=toml, sets=list(sets))
