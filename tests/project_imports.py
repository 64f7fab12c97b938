"""The project modules a module imports, found with ast: what dvc.yaml's code deps and the parts' rules hold to."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT

PACKAGES = ("imgclf", "stages")


def module_file(dotted: str) -> Path | None:
    """The project file behind a dotted module name (imgclf.train.training -> imgclf/train/training.py), or None."""
    path = PROJECT.joinpath(*dotted.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imports_of(path: Path) -> set[Path]:
    """Project files a module imports anywhere in it (also inside functions), with the packages' __init__."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from imgclf import layout` names a module; `from imgclf.x import f` names an attribute of one.
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    files = set()
    for name in found:
        if name.split(".")[0] not in PACKAGES:
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            if (file := module_file(".".join(parts[:i]))) is not None:
                files.add(file)
    return files


def import_closure(script: Path) -> set[str]:
    """Every project file that running `script` imports, as paths relative to the project: its
    packages' __init__ first (`python -m stages.train` runs stages/__init__.py), then its imports."""
    packages = [folder / "__init__.py" for folder in script.parents if PROJECT in folder.parents]
    seen, todo = set(), [script, *(init for init in packages if init.is_file())]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += imports_of(path) - seen
    return {p.relative_to(PROJECT).as_posix() for p in seen}
