"""config: layering (defaults < preset < TOML < --set), unknown keys, type checks, TOML and --set parsing."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from srpipe.config import RunOptions, build_config, diff_configs, parse_set, read_toml, resolve_device, to_dict
from srpipe.degrade.config import PRESETS, DegradeConfig
from srpipe.errors import UsageError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1  # a float
    steps: int = 10  # an int
    mode: Literal["fast", "slow"] = "fast"  # choices
    level: Literal[1, 2, 3] = 1  # integer choices
    flag: bool = False  # a bool
    size: tuple[int, int] = (3, 4)  # fixed-length tuple
    names: tuple[str, ...] = ()  # variable-length tuple
    limit: float | None = None  # optional
    label: str = "x"  # a string

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError("inner.steps must be >= 0")


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    seed: int = 0  # an int at the top level


def build(**kw) -> Outer:
    return build_config(Outer, **kw)


def usage_error(**kw) -> str:
    with pytest.raises(UsageError) as ei:
        build(**kw)
    assert ei.value.exit_code == 2
    return str(ei.value)


# ---------------------------------------------------------------------------------------------
# Layering


def test_defaults():
    assert build() == Outer()


def test_layer_order_preset_toml_set():
    preset = {"inner": {"rate": 0.2, "steps": 20, "label": "p"}, "seed": 1}
    toml = {"inner": {"rate": 0.3, "label": "t"}}
    sets = ["inner.rate=0.4"]
    c = build(preset=preset, toml=toml, sets=sets)
    assert (c.inner.rate, c.inner.steps, c.inner.label, c.seed) == (0.4, 20, "t", 1)
    c = build(preset=preset, toml=toml)
    assert (c.inner.rate, c.inner.label) == (0.3, "t")
    c = build(preset=preset)
    assert (c.inner.rate, c.inner.steps, c.inner.label) == (0.2, 20, "p")
    # later --set items win over earlier ones
    assert build(sets=["seed=1", "seed=2"]).seed == 2


def test_preset_dict_is_not_mutated():
    preset = {"inner": {"rate": 0.2}}
    build(preset=preset, toml={"inner": {"steps": 3}}, sets=["inner.flag=true"])
    assert preset == {"inner": {"rate": 0.2}}


def test_single_set_string_is_one_item():
    assert build(sets="seed=5").seed == 5


# ---------------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_top_level_key():
    msg = usage_error(sets=["sede=3"])
    assert "unknown config key sede" in msg
    assert "valid keys: inner, seed" in msg


def test_unknown_dotted_key_is_named_in_full():
    msg = usage_error(sets=["nosuch.key=1"])
    assert "nosuch.key" in msg and "valid keys" in msg


def test_unknown_nested_key():
    msg = usage_error(sets=["inner.rat=0.5"])
    assert "inner.rat" in msg
    for k in ("inner.rate", "inner.steps", "inner.mode", "inner.size"):
        assert k in msg


def test_unknown_keys_in_toml_and_preset():
    assert "inner.bogus" in usage_error(toml={"inner": {"bogus": 1}})
    assert "extra" in usage_error(preset={"extra": 1})


def test_section_given_a_value():
    assert "section" in usage_error(sets=["inner=3"])


# ---------------------------------------------------------------------------------------------
# Types


@pytest.mark.parametrize(
    "item,words",
    [
        ("inner.rate=abc", ["inner.rate", "number", "abc"]),  # string for float
        ("inner.rate=true", ["inner.rate", "number"]),  # bool is not a number here
        ("inner.steps=1.5", ["inner.steps", "integer"]),  # float for int
        ("inner.steps=1e3", ["inner.steps", "integer"]),
        ("inner.steps=true", ["inner.steps", "integer"]),  # bool for int
        ("inner.flag=1", ["inner.flag", "true or false"]),  # int for bool
        ("inner.flag=yes", ["inner.flag", "true or false"]),
        ("inner.mode=medium", ["inner.mode", "'fast'", "'slow'"]),  # not a choice
        ("inner.level=4", ["inner.level", "1, 2, 3"]),
        ("inner.level=true", ["inner.level"]),  # True == 1 in Python; still not a choice
        ("inner.level=1.0", ["inner.level"]),
        ("inner.size=[1]", ["inner.size", "2 values"]),
        ("inner.size=[1, 2, 3]", ["inner.size", "2 values"]),
        ("inner.size=[1, 'x']", ["inner.size[1]", "integer"]),
        ("inner.size=5", ["inner.size", "list"]),
        ("inner.names=['a', 2]", ["inner.names[1]", "string"]),
        ("inner.label=3", ["inner.label", "string"]),
        ("inner.limit=abc", ["inner.limit"]),
        ("seed=x", ["seed", "integer"]),
    ],
)
def test_wrong_types_raise(item, words):
    msg = usage_error(sets=[item])
    for w in words:
        assert w in msg, (item, msg)


def test_accepted_values_and_conversions():
    c = build(
        sets=[
            "inner.rate=1",
            "inner.mode=slow",
            "inner.level=3",
            "inner.flag=true",
            "inner.size=[5, 6]",
            "inner.names=['a', 'b']",
            "inner.limit=2",
            "inner.label=hello world",
        ]
    )
    assert c.inner.rate == 1.0 and type(c.inner.rate) is float  # int accepted for float, stored as float
    assert c.inner.mode == "slow" and c.inner.level == 3 and c.inner.flag is True
    assert c.inner.size == (5, 6) and isinstance(c.inner.size, tuple)
    assert c.inner.names == ("a", "b")
    assert c.inner.limit == 2.0 and type(c.inner.limit) is float
    assert c.inner.label == "hello world"
    assert build(sets=["inner.names=[]"]).inner.names == ()


def test_post_init_validation_becomes_usage_error():
    msg = usage_error(sets=["inner.steps=-1"])
    assert "inner.steps must be >= 0" in msg


def test_config_is_frozen():
    c = build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 3  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# --set parsing


@pytest.mark.parametrize(
    "item,expected",
    [
        ("a=box", {"a": "box"}),
        ("a=lpips-alex", {"a": "lpips-alex"}),
        ("a=1", {"a": 1}),
        ("a=-3", {"a": -3}),
        ("a=1e-4", {"a": 1e-4}),
        ("a=2.5", {"a": 2.5}),
        ("a=.5", {"a": 0.5}),
        ("a=true", {"a": True}),
        ("a=false", {"a": False}),
        ("a=[1, 2]", {"a": [1, 2]}),
        ('a="x=y"', {"a": "x=y"}),
        ("a=x=y", {"a": "x=y"}),
        (" a.b.c = 7 ", {"a": {"b": {"c": 7}}}),
        ("a=", {"a": ""}),
        ("a=1.2.3", {"a": "1.2.3"}),
    ],
)
def test_parse_set(item, expected):
    v = parse_set(item)
    assert v == expected
    leaf = v
    while isinstance(leaf, dict):
        leaf = next(iter(leaf.values()))
    exp = expected
    while isinstance(exp, dict):
        exp = next(iter(exp.values()))
    assert type(leaf) is type(exp)


@pytest.mark.parametrize("item,word", [("optim.lr", "KEY=VALUE"), ("=3", "empty key"), ("a..b=1", "empty key")])
def test_parse_set_errors(item, word):
    with pytest.raises(UsageError, match=word) as ei:
        parse_set(item)
    assert item in str(ei.value)


# ---------------------------------------------------------------------------------------------
# TOML files


def test_read_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('seed = 4\n[inner]\nrate = 1e-4\nmode = "slow"\nsize = [7, 8]\n')
    c = build(toml=read_toml(f))
    assert (c.seed, c.inner.rate, c.inner.mode, c.inner.size) == (4, 1e-4, "slow", (7, 8))


def test_read_toml_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist") as ei:
        read_toml(tmp_path / "missing.toml")
    assert "missing.toml" in str(ei.value)
    (tmp_path / "bad.toml").write_text("seed = = 3\n")
    with pytest.raises(UsageError, match="not valid TOML") as ei:
        read_toml(tmp_path / "bad.toml")
    assert "bad.toml" in str(ei.value)
    (tmp_path / "latin1.toml").write_bytes(b'label = "caf\xe9"\n')
    with pytest.raises(UsageError, match="latin1.toml"):
        read_toml(tmp_path / "latin1.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(UsageError, match="dir.toml"):
        read_toml(tmp_path / "dir.toml")


# ---------------------------------------------------------------------------------------------
# Helpers


def test_diff_configs():
    old = to_dict(build())
    new = to_dict(build(sets=["inner.rate=0.5", "seed=2"]))
    assert diff_configs(old, new) == ["inner.rate: 0.1 -> 0.5", "seed: 0 -> 2"]
    assert diff_configs(old, old) == []
    assert diff_configs({"a": 1}, {"b": 2}) == ["a: 1 -> None", "b: None -> 2"]


def test_to_dict_is_json_and_round_trips():
    c = build(sets=["inner.size=[1, 2]", "inner.names=['q']"])
    d = to_dict(c)
    assert d["inner"]["size"] == [1, 2] and json.loads(json.dumps(d)) == d
    assert build(toml=d) == c  # a saved config.json rebuilds the same config


# ---------------------------------------------------------------------------------------------
# The real DSGAN config and its presets


def test_degrade_presets():
    paper = build_config(DegradeConfig, preset=PRESETS["paper"])
    assert paper == DegradeConfig()
    assert (paper.data.hr_crop, paper.optim.batch) == (512, 16)
    assert (paper.loss.w_adv, paper.loss.perceptual) == (0.005, "lpips-alex")
    tiny = build_config(DegradeConfig, preset=PRESETS["tiny"])
    assert tiny.data.hr_crop == 128 and tiny.loss.perceptual == "none" and tiny.model.res_blocks == 4
    t2 = build_config(DegradeConfig, preset=PRESETS["tiny"], sets=["loss.perceptual=lpips-vgg", "optim.lr=1e-4"])
    assert t2.loss.perceptual == "lpips-vgg" and t2.optim.lr == 1e-4 and t2.data.hr_crop == 128


def test_degrade_config_errors():
    with pytest.raises(UsageError, match="data.scale"):
        build_config(DegradeConfig, preset=PRESETS["tiny"], sets=["data.scale=5"])
    with pytest.raises(UsageError, match="multiple of data.scale"):  # 128 % 3 != 0
        build_config(DegradeConfig, preset=PRESETS["tiny"], sets=["data.scale=3"])
    with pytest.raises(UsageError, match="loss.perceptual"):
        build_config(DegradeConfig, sets=["loss.perceptual=vgg19"])
    with pytest.raises(UsageError, match="data.hr_krop"):
        build_config(DegradeConfig, sets=["data.hr_krop=256"])


def test_run_options_and_devices():
    assert RunOptions().device == "auto" and not dataclasses.is_dataclass(RunOptions().device)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA"):
            resolve_device("cuda")


def test_typed_overrides_come_last_and_are_checked():
    c = build_config(DegradeConfig, preset=PRESETS["tiny"], sets=["data.scale=4"], overrides={"data": {"scale": 2}})
    assert c.data.scale == 2 and c.model.features == PRESETS["tiny"]["model"]["features"]
    with pytest.raises(UsageError, match=r"config data\.scale: expected an integer, got '3'"):
        build_config(DegradeConfig, overrides={"data": {"scale": "3"}})
    with pytest.raises(UsageError, match="unknown config key data.nosuch"):
        build_config(DegradeConfig, overrides={"data": {"nosuch": 1}})


def test_pipeline_files_are_checked_by_the_config_validator(tmp_path):
    from srpipe.pipeline.spec import load_pipeline

    spec = tmp_path / "p.toml"
    spec.write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[interpolate]\nalphas = [0, 1]\n')
    p = load_pipeline(spec)
    assert p.alphas == (0.0, 1.0) and all(type(a) is float for a in p.alphas) and p.tile == 256
    spec.write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[upscale]\ntile = "big"\n')
    with pytest.raises(UsageError, match=r"p\.toml: config upscale\.tile: expected an integer, got 'big'"):
        load_pipeline(spec)
    spec.write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[eval]\nfid = 1\n')
    with pytest.raises(UsageError, match=r"p\.toml: config eval\.fid: expected true or false, got 1"):
        load_pipeline(spec)
