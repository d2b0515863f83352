"""Imports follow the tiers: a module imports only its own tier and the ones below it.

Bottom to top: the core (errors, config, log); image I/O and filters; training machinery and
evaluation; the two stages, `degrade` and `upscale`, which never import each other; `pipeline`; the
command line. Lazy imports inside functions count too. Nothing below `cli` imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

SRC = ROOT / "src" / "srpipe"

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
            bad.append(f"{path.relative_to(root)}: module {src_unit!r} has no tier in tests/contracts/test_tiers.py")
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


# ---- size limits: a newcomer reads any function on one screen and any module in one sitting

MAX_FUNCTION_LINES = 80  # from the `def` line to the last line of the body
MAX_MODULE_LINES = 500
MAX_CLOSURE_NAMES = 5  # outer names a nested function (or lambda) captures

# Today's offenders, each with its reason. Remove an entry when it is fixed (the last test below
# fails on entries that no longer offend); never add one for new code.
ALLOWED = {}

_COMPREHENSIONS = ("listcomp", "dictcomp", "setcomp", "genexpr")


def _closures(table, qual: str = "") -> list[tuple[str, int]]:
    """(qualified name, captured outer names) of every nested function or lambda in a symbol table."""
    import symtable

    found = []
    for child in table.get_children():
        name = child.get_name()
        if child.get_type() == "function" and name not in _COMPREHENSIONS:
            q = f"{qual}.{name}" if qual else name
            if qual and isinstance(table, symtable.Function):
                found.append((q, len(child.get_frees())))
            found += _closures(child, q)
        elif child.get_type() == "class":
            found += _closures(child, f"{qual}.{name}" if qual else name)
    return found


def size_offenders(root: Path = SRC) -> dict[str, str]:
    """{"path" or "path:function": what is over the limit} for every module, function and closure."""
    import symtable

    found = {}
    for path in sorted(root.rglob("*.py")):
        rel, text = path.relative_to(root).as_posix(), path.read_text()
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            found[rel] = f"{n} lines (limit {MAX_MODULE_LINES})"
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    found[f"{rel}:{node.name}"] = f"{n} lines (limit {MAX_FUNCTION_LINES})"
        for qual, n in _closures(symtable.symtable(text, str(path), "exec")):
            if n > MAX_CLOSURE_NAMES:
                found[f"{rel}:{qual}"] = f"captures {n} outer names (limit {MAX_CLOSURE_NAMES})"
    return found


def test_no_new_function_module_or_closure_over_the_limits():
    new = {k: v for k, v in size_offenders().items() if k not in ALLOWED}
    assert new == {}, "split these (functions, modules) or pass what they use as arguments (closures)"


def test_the_allow_list_only_holds_offenders():
    fixed = sorted(set(ALLOWED) - set(size_offenders()))
    assert fixed == [], "these are within the limits now: remove them from ALLOWED"


def test_the_size_check_catches_each_kind(tmp_path):
    fake = tmp_path / "srpipe"
    fake.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (fake / "long.py").write_text(f"def f():\n{body}")
    (fake / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    names = ", ".join(f"a{i}" for i in range(MAX_CLOSURE_NAMES + 1))
    (fake / "closure.py").write_text(
        f"def outer({names}):\n    def inner():\n        return [{names}]\n\n    return inner\n"
        f"def fine({names}):\n    return [v for v in ({names})]\n"
    )
    assert set(size_offenders(fake)) == {"long.py:f", "big.py", "closure.py:outer.inner"}
