"""The package's layering: each stage imports only from the stages below it (README, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ofa_edge"

# stage -> level; a module may import from its own stage and from lower levels only.
FOUNDATION = ("errors", "fileio", "host", "_lazy", "_version")  # plain helpers every stage may use
LEVELS = {
    "foundation": 0,
    "space": 1, "hub": 1,
    "nn": 2,
    "convert": 3,
    "train": 4, "profilers": 4,
    "latency": 5,
    "search": 6,
    "export": 7,
    "cli": 8,
}  # fmt: skip
# ``ofa_edge`` itself re-exports every stage (lazily), so a stage that imports a name from it
# (``from .. import X``, ``from ofa_edge import X``, ``import ofa_edge``) may pull in any stage.
ROOT = "ofa_edge"


def _stage(module: str) -> str:
    top = module.split(".")[0]
    return "foundation" if top in FOUNDATION else top


def _imports(path: Path) -> list[str]:
    """ofa_edge modules imported by ``path`` (relative imports resolved), as paths below ofa_edge;
    an import from the package itself is ``ROOT`` or ``ROOT:name``."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    package = here[:-1]  # the package a relative import starts from (an __init__ is its own package)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up > len(package):
                    names = node.module or ", ".join(alias.name for alias in node.names)
                    found.append(f"{'.' * node.level}{names} (outside ofa_edge)")
                    continue
                target = list(package[: len(package) - up]) + (node.module.split(".") if node.module else [])
            elif node.module == ROOT or (node.module or "").startswith(ROOT + "."):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.append(".".join(target))
            else:  # "from .. import X" / "from ofa_edge import X": X comes through the package root
                found += [f"{ROOT}:{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT:
                    found.append(ROOT)
                elif alias.name.startswith(ROOT + "."):
                    found.append(alias.name.split(".", 1)[1])
    return found


def _modules():
    """(path, path below ofa_edge, its stage) of every module but the package's own ``__init__``."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue  # the public API re-exports every stage (lazily)
        yield path, rel, _stage(".".join(rel.with_suffix("").parts))


def test_every_module_belongs_to_a_stage():
    for _, rel, stage in _modules():
        assert stage in LEVELS, f"{rel} is in no stage of the layout"


def test_no_import_runs_upward():
    upward = []
    for path, rel, mine in _modules():
        for target in _imports(path):
            if target.split(":")[0] == ROOT:
                what = f"{target.partition(':')[2]} from the package root" if ":" in target else "the package root"
                upward.append(f"{rel} imports {what}, which re-exports every stage")
                continue
            theirs = _stage(target)
            if theirs not in LEVELS:
                upward.append(f"{rel} imports {target}, which is in no stage of the layout")
            elif theirs != mine and LEVELS[theirs] >= LEVELS[mine]:
                upward.append(f"{rel} imports {target}")
    assert not upward, "imports that run upward or sideways:\n" + "\n".join(upward)


def test_checkpoint_code_does_not_need_the_data_module():
    assert not [t for t in _imports(PACKAGE / "nn" / "checkpoint.py") if t.startswith("train")]
