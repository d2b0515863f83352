"""The pipeline file's sections: frozen dataclasses with commented defaults, read through the one
config validator (unknown keys, wrong types and out-of-range values are errors naming the file)."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from srpipe.config import build_config
from srpipe.errors import UsageError
from srpipe.pipeline import spec
from srpipe.pipeline.spec import PipelineFile, load_pipeline

INPUTS = '[inputs]\nhr = "hr"\nreal_lr = "lr"\n'
SECTIONS = [f.name for f in dataclasses.fields(PipelineFile)]


@pytest.fixture
def write(tmp_path):
    for d in ("hr", "lr"):
        (tmp_path / d).mkdir()

    def write(text: str):
        f = tmp_path / "p.toml"
        f.write_text(text)
        return f

    return write


def test_sections_are_the_files_tables():
    assert SECTIONS == ["inputs", "degrade", "pairs", "sr", "baseline", "interpolate", "upscale", "eval"]
    f = build_config(PipelineFile, toml={"inputs": {"hr": "hr"}})
    assert (f.pairs.cleanup_factor, f.pairs.jpeg, f.interpolate.alphas, f.upscale.tile) == (1, "auto", (0.8,), 256)
    assert (f.eval.enabled, f.eval.fid, f.sr.enabled, f.sr.preset, f.degrade.method) == (True, True, True, "paper", "")
    assert (f.baseline.chosen(), f.baseline.blind.draws, f.baseline.blind.seed) == (("bicubic", "blind"), 2, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.pairs.cleanup_factor = 2


def test_every_default_has_a_comment():
    for cls in (c for c in vars(spec).values() if inspect.isclass(c) and c.__name__.endswith(("Section", "File"))):
        lines, start = inspect.getsourcelines(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        for node in ast.parse(inspect.cleandoc("".join(lines))).body[0].body:
            if isinstance(node, ast.AnnAssign) and node.target.id in fields:
                assert "  # " in lines[node.lineno - 1], f"{cls.__name__}.{node.target.id} has no comment"


def test_a_minimal_file_gets_the_defaults(write):
    p = load_pipeline(write(INPUTS))
    assert (p.cleanup_factor, p.jpeg, p.alphas, p.tile, p.eval, p.fid) == (1, "auto", (0.8,), 256, True, True)
    assert (p.baselines, p.blind_draws, p.blind_seed) == (("bicubic", "blind"), 2, 0)
    assert p.inputs["pairs_hr"] == p.inputs["hr"] and "test_hr" not in p.inputs


@pytest.mark.parametrize("section", SECTIONS + ["baseline.blind"])
def test_unknown_keys_are_errors_in_every_section(write, section):
    text = INPUTS + f"[{section}]\nnosuch = 1\n" if section != "inputs" else '[inputs]\nhr = "hr"\nnosuch = "x"\n'
    with pytest.raises(
        UsageError, match=rf"p\.toml: unknown config key {section}\.nosuch in \[{section}\]; valid keys"
    ):
        load_pipeline(write(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nosuch]\na = 1\n", r"unknown config key nosuch\.a; valid keys: inputs, degrade, pairs"),
        ("upscale = 3\n", r"config upscale is a section"),
        ('[upscale]\ntile = "big"\n', r"config upscale\.tile: expected an integer, got 'big'"),
        ("[upscale]\ntile = -1\n", r"upscale\.tile must be >= 0"),
        ("[eval]\nfid = 1\n", r"config eval\.fid: expected true or false, got 1"),
        ("[pairs]\ncleanup_factor = 0\n", r"pairs\.cleanup_factor must be >= 1, got 0"),
        ('[pairs]\njpeg = "0"\n', r"pairs\.jpeg: --jpeg 0: quality must be 1\.\.100"),
        ("[interpolate]\nalphas = [0.5, 2]\n", r"interpolate\.alphas values must be in \[0, 1\], got 2\.0"),
        ('[interpolate]\nalphas = "0.5"\n', r"config interpolate\.alphas: expected a list"),
        ('[degrade]\nmethod = "esrgan"\n', r"degrade\.method must be one of dsgan, pdm, got 'esrgan'"),
        ('[degrade]\npreset = "huge"\n', r"degrade\.preset must be one of paper, tiny, got 'huge'"),
        ("[degrade]\nconfig = 3\n", r"config degrade\.config: expected a table"),
        ('[degrade.config.optim]\nlr = "x"\n', r" \[degrade\.config\]: config optim\.lr: expected a number"),
        ('[sr]\npreset = "huge"\n', r"sr\.preset must be one of paper, tiny, got 'huge'"),
        ("[sr.config.data]\nscale = 2\n", r"sr scale x2 differs from degrade scale x4"),
        ("[baseline]\nbicubic = 1\n", r"config baseline\.bicubic: expected true or false, got 1"),
        ('[baseline]\nkinds = ["bicubic"]\nbicubic = true\n', r"has both kinds and bicubic; keep kinds only"),
        ('[baseline]\nkinds = ["nearest"]\n', r"baseline\.kinds\[0\]: 'nearest' is not one of 'bicubic', 'blind'"),
        ('[baseline]\nkinds = ["blind", "blind"]\n', r"baseline\.kinds lists a kind twice"),
        ("[baseline.blind]\ndraws = 0\n", r"baseline\.blind\.draws must be >= 1, got 0"),
    ],
)
def test_bad_values_name_the_file_and_the_key(write, text, message):
    with pytest.raises(UsageError, match=r"^pipeline \S*p\.toml.*" + message):
        # a top-level key goes before the first table, else TOML puts it in [inputs]
        load_pipeline(write(text + INPUTS if not text.startswith("[") else INPUTS + text))


def test_inputs_errors(write, tmp_path):
    with pytest.raises(UsageError, match=r'p\.toml: config inputs: inputs\.hr = "FOLDER" is required'):
        load_pipeline(write('[inputs]\nreal_lr = "lr"\n'))
    with pytest.raises(UsageError, match=r"\[inputs\] real_lr is required \(or set degrade\.config\.data\.same_domain"):
        load_pipeline(write('[inputs]\nhr = "hr"\n'))
    (tmp_path / "tp" / "lr").mkdir(parents=True)
    with pytest.raises(UsageError, match="test_pairs = .* must hold lr/ and hr/ folders"):
        load_pipeline(write(INPUTS + 'test_pairs = "tp"\n'))
    (tmp_path / "tp" / "hr").mkdir()
    assert load_pipeline(write(INPUTS + 'test_pairs = "tp"\n')).inputs["test_pairs"] == (tmp_path / "tp").resolve()


def test_same_domain_needs_no_real_lr_and_sr_off_has_no_baselines(write):
    p = load_pipeline(
        write(
            '[inputs]\nhr = "hr"\n[degrade]\nmethod = "dsgan"\n[degrade.config.data]\nsame_domain = true\n[sr]\nenabled = false\n'
        )
    )
    assert "real_lr" not in p.inputs and p.sr is None and p.baselines == ()
