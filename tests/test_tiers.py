"""Imports follow the tiers: a module imports only its own tier and the ones below it.

Bottom to top: the core (errors, config, log); image I/O and filters; training machinery and
evaluation; the two stages, `degrade` and `upscale`, which never import each other; `pipeline`; the
command line. Lazy imports inside functions count too. Nothing below `cli` imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "srpipe"

TIERS: dict[str, int] = {
    # core: errors, configs, library messages
    "srpipe": 0,
    "errors": 0,
    "config": 0,
    "log": 0,
    # image I/O and filters
    "io": 1,
    # training machinery and evaluation
    "engine": 2,
    "eval": 2,
    # the stages
    "degrade": 3,
    "upscale": 3,
    "pipeline": 4,
    "cli": 5,
    "__main__": 5,
}
STAGES = ("degrade", "upscale")


def _unit(parts: tuple[str, ...]) -> str:
    """The tier unit of a module path below srpipe: its top-level module or package."""
    return parts[0] if parts else "srpipe"


def _module_parts(path: Path, root: Path) -> tuple[str, ...]:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports_of(path: Path, root: Path = SRC) -> list[tuple[int, tuple[str, ...]]]:
    """(line, module path below srpipe) of every srpipe import in the file, lazy ones included."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_parts(path, root)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "srpipe" or a.name.startswith("srpipe."):
                    found.append((node.lineno, tuple(a.name.split(".")[1:])))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = base + tuple((node.module or "").split(".")) if node.module else base
            elif node.module == "srpipe" or (node.module or "").startswith("srpipe."):
                mod = tuple(node.module.split(".")[1:])
            else:
                continue
            if not mod:  # `from srpipe import a, b`: each name may be a module
                for a in node.names:
                    found.append((node.lineno, (a.name,) if a.name in TIERS else ()))
            else:
                found.append((node.lineno, mod))
    return found


def violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        src_unit = _unit(_module_parts(path, root))
        if src_unit not in TIERS:
            bad.append(f"{path.relative_to(root)}: module {src_unit!r} has no tier in tests/test_tiers.py")
            continue
        for line, mod in imports_of(path, root):
            dst_unit = _unit(mod)
            where = f"{path.relative_to(root)}:{line} imports srpipe.{'.'.join(mod)}"
            if dst_unit not in TIERS:
                bad.append(f"{where}, which has no tier")
            elif dst_unit == src_unit:
                continue
            elif TIERS[dst_unit] > TIERS[src_unit]:
                bad.append(f"{where} (tier {TIERS[dst_unit]} above tier {TIERS[src_unit]})")
            elif src_unit in STAGES and dst_unit in STAGES:
                bad.append(f"{where}: the stages do not import each other")
    return bad


def test_no_import_crosses_a_tier_upwards():
    assert violations() == []


def test_nothing_outside_cli_imports_cli():
    users = []
    for path in SRC.rglob("*.py"):
        if _module_parts(path, SRC)[:1] != ("cli",) and path.name != "__main__.py":
            users += [f"{path.relative_to(SRC)}:{line}" for line, mod in imports_of(path) if mod[:1] == ("cli",)]
    assert users == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("io/imageio.py", "from srpipe.cli.console import info\n", "tier 5 above tier 1"),
        ("degrade/x.py", "def f():\n    from srpipe.upscale import archs\n", "do not import each other"),
        ("engine/ckpt.py", "from srpipe import pipeline\n", "tier 4 above tier 2"),
        ("io/tiling.py", "from srpipe.eval import metrics\n", "tier 2 above tier 1"),
        ("resize.py", "", "has no tier"),  # a module at the top that belongs in a tier folder
        ("upscale/y.py", "from ..degrade import pairs\n", "do not import each other"),
    ],
)
def test_the_check_catches_a_wrong_import(tmp_path, name, text, expected):
    fake = tmp_path / "srpipe"
    (fake / name).parent.mkdir(parents=True, exist_ok=True)
    (fake / name).write_text(text)
    found = violations(fake)
    assert len(found) == 1 and expected in found[0], found
