"""Typed configuration: frozen dataclasses hold every default; TOML files and `--set` only override.

A stage config is a frozen dataclass whose fields are scalars, tuples, `Literal`s or nested
frozen dataclasses (sections); a `dict` field takes a table as it is, for a config class that
checks it later (the pipeline file's `[sr.config]`). `build_config` layers, in order:

    dataclass defaults  <  preset (a small dict next to the dataclass)  <  TOML file  <  --set a.b=v
                        <  typed overrides (the command's own options, e.g. --scale 2)

Unknown keys and values of the wrong type are errors (nanoGPT's configurator semantics, without
its `exec`). TOML is used, not YAML, so `1e-4` is a float and not a string (BasicSR's `!!float`).

Result-changing parameters live in the stage config; run options (device, precision, logging) live
in `RunOptions` and never enter a cache key or a "config changed" check.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from srpipe.errors import UsageError


TrainPrecision = Literal["auto", "bf16", "fp32"]  # fp16 would need loss scaling; bf16 has fp32's range
InferPrecision = Literal["auto", "fp16", "bf16", "fp32"]  # inference reruns non-finite fp16 tiles in fp32
TRAIN_PRECISIONS: tuple[str, ...] = get_args(TrainPrecision)  # the one list of training precisions
INFER_PRECISIONS: tuple[str, ...] = get_args(InferPrecision)  # the one list of inference precisions
LogMode = Literal["auto", "csv", "tensorboard", "both"]
OnOff = Literal["auto", "on", "off"]
DataPlacement = Literal["auto", "device", "pinned", "mapped"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run, not what to compute: never part of a cache key or a resume check.

    Every field is checked against its type by the config validator when the options are made.
    """

    device: str = "auto"  # auto | cpu | cuda | cuda:N; auto picks CUDA when present
    log_every: int = 10  # steps between CSV log rows / progress loss refreshes
    log: LogMode = "auto"  # auto is both when tensorboard is installed (srpipe.engine.runlog)
    sample_every: int = 0  # steps between sample grids (0: at the end only)
    ckpt_every: int = 0  # steps between checkpoints (0: choose from the run length)
    keep_ckpts: int = 2  # how many step checkpoints to keep
    restart: bool = False  # start over in a folder that holds a run with another config
    weights_dir: str = ""  # extra folder searched first for pretrained backbone files
    # Set by the pipeline to its stage key: the run folder resumes on that identity alone (the key
    # holds every result-changing setting and the inputs' content; paths and other settings may move).
    resume_identity: str = ""
    # Speed. Not result-changing in the config's sense: they move the numbers by rounding only.
    precision: TrainPrecision = "auto"  # auto is bf16 autocast on CUDA (fp32 losses/EMA/optimizer), fp32 on CPU
    channels_last: OnOff = "auto"  # auto is on for CUDA (tensor-core friendly NHWC convolutions)
    compile: bool = False  # torch.compile the networks (minutes of compiling; pays off on long GPU runs)
    data_placement: DataPlacement = "auto"  # where the uint8 training images live (srpipe.engine.augment)
    # A non-finite loss skips its update; this many in a row stop the run (a diverged run, not a glitch).
    max_bad_steps: int = 20

    def __post_init__(self):
        hints = typing.get_type_hints(RunOptions)
        for f in dataclasses.fields(self):
            check_value(getattr(self, f.name), hints[f.name], f"run.{f.name}")


def resolve_device(name: str):
    """`auto` -> cuda if available else cpu; an explicit `cuda` without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from e


def to_dict(cfg: Any) -> dict:
    """The config as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_value(value: Any, tp: Any, where: str) -> Any:
    """`value` checked against annotation `tp` (the one validator of configs and pipeline files),
    converted only where that loses nothing (int -> float); `where` names the key in errors."""
    return _coerce(value, tp, where)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        # Compare types too: `True in (1, 2)` and `1.0 in (1, 2)` are true in Python.
        if not any(value == a and type(value) is type(a) for a in get_args(tp)):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise UsageError(f"config {where}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arm, where)
            except UsageError as e:
                errors.append(str(e))
        if len(errors) == 1:  # an optional value (`X | None`): X's own message says what is expected
            raise UsageError(errors[0])
        raise UsageError(f"config {where}: {value!r} does not fit {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"config {where}: expected a list, got {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise UsageError(f"config {where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise UsageError(f"config {where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"config {where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"config {where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UsageError(f"config {where}: expected a string, got {value!r}")
        return value
    if tp is dict:  # a table its own config class checks later (a pipeline file's [sr.config])
        if not isinstance(value, dict):
            raise UsageError(f"config {where}: expected a table, e.g. [{where}.<section>], got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {where}")  # a bug in a config class


def _build(cls: type, data: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in [{prefix.rstrip('.')}]" if prefix else ""
        # Name the key as the user wrote it (`nosuch.key`, not just `nosuch`).
        names = [leaf for k in unknown for leaf in _leaves(prefix + k, data[k])]
        raise UsageError(
            f"unknown config key{'s' if len(names) > 1 else ''} {', '.join(names)}{where}; "
            f"valid keys: {', '.join(prefix + k for k in fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            sub = data.get(name, {})
            if not isinstance(sub, dict):
                raise UsageError(f"config {prefix}{name} is a section; set its keys, e.g. {prefix}{name}.<key>=...")
            kwargs[name] = _build(tp, sub, f"{prefix}{name}.")
        elif name in data:
            kwargs[name] = _coerce(data[name], tp, prefix + name)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # __post_init__ validation
        raise UsageError(f"config {prefix.rstrip('.') or cls.__name__}: {e}") from e


def _leaves(key: str, value: Any) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{key}.{k}", v)]
    return [key]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


_PY_NUMBER = re.compile(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?")


def parse_set(item: str) -> dict:
    """`a.b=value` -> {"a": {"b": value}}, the value read as a TOML value (bare words are strings)."""
    if "=" not in item:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UsageError(f"--set {item!r}: empty key")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if _PY_NUMBER.fullmatch(raw):  # `.5`, `5.`: numbers to a user, though not TOML
            value = float(raw)
        else:
            value = raw  # a bare word such as `box` or `lpips-alex`
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file {p} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"config file {p} is not valid TOML: {e}") from None
    except OSError as e:  # a folder, no permission
        raise UsageError(f"cannot read config file {p}: {e.strerror or e}") from None


def build_config(
    cls: type,
    *,
    preset: dict | None = None,
    toml: dict | None = None,
    sets: list[str] = (),
    overrides: dict | None = None,
) -> Any:
    """Defaults < preset < TOML data < `--set` items < `overrides`; every layer checked for unknown keys and types.

    `overrides` is nested typed data like a TOML table (`{"data": {"scale": 2}}`): what a command's
    own options ask for, so they need no round trip through `--set` strings.
    """
    if isinstance(sets, str):  # a lone "a.b=v" would otherwise be read character by character
        sets = [sets]
    data: dict = {}
    for layer in (preset or {}, toml or {}):
        data = _merge(data, layer)
    for item in sets:
        data = _merge(data, parse_set(item))
    data = _merge(data, overrides or {})
    return _build(cls, data, "")


def diff_configs(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable list of keys whose values differ (for "config changed" refusals)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
