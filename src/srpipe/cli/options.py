"""Options shared by computing commands, and turning them into a config + run options."""

from __future__ import annotations

import functools
from typing import get_args

import click

from srpipe.config import TRAIN_PRECISIONS, DataPlacement, LogMode, OnOff


def config_options(presets: dict[str, dict]):
    """--preset (one of the stage's `presets`), --config FILE.toml, --set a.b=v (repeatable)."""

    def decorate(f):
        @click.option(
            "--preset",
            type=click.Choice(list(presets)),
            default="paper",
            show_default=True,
            help="Recipe to start from: the published one, or a minutes-on-a-CPU one.",
        )
        @click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="TOML file overriding preset values.",
        )
        @click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one value, e.g. --set optim.lr=1e-4 (repeatable).",
        )
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            return f(*args, **kwargs)

        return wrapper

    return decorate


def run_options(f):
    """--device and --weights-dir, which change how but not what is computed."""

    @click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
    @click.option(
        "--weights-dir",
        type=click.Path(file_okay=False),
        default=None,
        envvar="SRPIPE_WEIGHTS_DIR",
        help="Folder searched first for pretrained backbone files (VGG19, AlexNet, Inception).",
    )
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper


def training_options(f):
    """How a training run computes and logs (precision, memory format, compile, data placement, logging),
    passed on as one `training` dict of RunOptions fields; the engine resolves the first three into its
    `ComputeSettings`."""

    # The library checks the value (RunOptions, through the config validator), for the CLI and callers alike.
    @click.option(
        "--precision",
        default="auto",
        show_default=True,
        metavar=f"[{'|'.join(TRAIN_PRECISIONS)}]",
        help="auto: bf16 autocast on CUDA (losses, EMA and optimizer state stay fp32), fp32 on the CPU.",
    )
    @click.option(
        "--channels-last",
        type=click.Choice(get_args(OnOff)),
        default="auto",
        show_default=True,
        help="NHWC memory format for the networks (auto: on for CUDA).",
    )
    @click.option(
        "--compile/--no-compile",
        "compile_",
        default=False,
        show_default=True,
        help="torch.compile the networks: minutes of compiling first, faster steps after (long GPU runs).",
    )
    @click.option(
        "--data-on",
        "data_placement",
        type=click.Choice(get_args(DataPlacement)),
        default="auto",
        show_default=True,
        help="Where the uint8 training images live (auto: GPU memory when they fit).",
    )
    @click.option(
        "--log-every",
        type=click.IntRange(min=1),
        default=10,
        show_default=True,
        help="Steps between loss reads (the only host syncs of the loop), log rows and progress updates.",
    )
    @click.option(
        "--log",
        "log",
        type=click.Choice(get_args(LogMode)),
        default="auto",
        show_default=True,
        help="Training log: CSV, TensorBoard events (RUN/tb), or both "
        "(auto: both when tensorboard is installed, CSV otherwise).",
    )
    @click.option(
        "--max-bad-steps",
        type=click.IntRange(min=1),
        default=20,
        show_default=True,
        help="Stop after this many steps in a row with a non-finite loss (each one's update is skipped).",
    )
    @functools.wraps(f)
    def wrapper(*args, precision, channels_last, compile_, data_placement, log_every, log, max_bad_steps, **kwargs):
        from srpipe.engine.runlog import log_targets

        log_targets(log)  # --log tensorboard without the package: fail before any work
        training = {
            "precision": precision,
            "channels_last": channels_last,
            "compile": compile_,
            "data_placement": data_placement,
            "log_every": log_every,
            "log": log,
            "max_bad_steps": max_bad_steps,
        }
        return f(*args, training=training, **kwargs)

    return wrapper


def build(cls, presets: dict, preset: str, config_file: str | None, sets: tuple[str, ...], overrides: dict):
    """The stage config: dataclass defaults < preset < TOML < --set < the command's own options.

    `overrides` maps dotted keys to typed values, None for an option not given: {"data.scale": 2}.
    """
    from srpipe.config import build_config, read_toml

    nested: dict = {}
    for key, value in overrides.items():
        if value is not None:
            *sections, name = key.split(".")
            node = nested
            for s in sections:
                node = node.setdefault(s, {})
            node[name] = value
    toml = read_toml(config_file) if config_file else None
    return build_config(cls, preset=presets[preset], toml=toml, sets=list(sets), overrides=nested)
