"""The package's layering: each stage imports only from the stages below it (README, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ofa_edge"

# stage -> level; a module may import from its own stage and from lower levels only.
FOUNDATION = ("errors", "fileio", "host", "_lazy")  # plain helpers every stage may use
LEVELS = {
    "foundation": 0,
    "space": 1,
    "nn": 2,
    "convert": 3,
    "train": 4, "profilers": 4,
    "latency": 5,
    "search": 6,
    "export": 7,
    "cli": 8,
}  # fmt: skip


def _stage(module: str) -> str:
    top = module.split(".")[0]
    return "foundation" if top in FOUNDATION else top


def _imports(path: Path) -> list[str]:
    """ofa_edge modules imported by ``path`` (relative imports resolved), as paths below ofa_edge."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    package = here[:-1]  # the package a relative import starts from (an __init__ is its own package)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("ofa_edge"):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.append(".".join(target))
            else:  # "from .. import x": x is a module of that package
                found += [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("ofa_edge.")]
    return found


def test_every_module_belongs_to_a_stage():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue  # the public API re-exports every stage (lazily)
        assert _stage(".".join(rel.with_suffix("").parts)) in LEVELS, f"{rel} is in no stage of the layout"


def test_no_import_runs_upward():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1 and rel.name == "__init__.py":
            continue
        mine = _stage(".".join(rel.with_suffix("").parts))
        for target in _imports(path):
            theirs = _stage(target)
            if theirs != mine and LEVELS.get(theirs, -1) >= LEVELS[mine]:
                upward.append(f"{rel} imports {target}")
    assert not upward, "imports that run upward or sideways:\n" + "\n".join(upward)


def test_checkpoint_code_does_not_need_the_data_module():
    assert not [t for t in _imports(PACKAGE / "nn" / "checkpoint.py") if t.startswith("train")]
