"""The package's parts: the core imports none, their import graph has no cycle, and docs/pipeline.md maps them truly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.project_imports import imports_of, module_file

PACKAGE = PROJECT / "imgclf"
PIPELINE_DOC = PROJECT / "docs" / "pipeline.md"
CORE = "core"


def _part(path: Path) -> str | None:
    """imgclf/params.py -> core; imgclf/train/model.py -> train; a file outside imgclf -> None."""
    if not path.is_relative_to(PACKAGE):
        return None
    relative = path.relative_to(PACKAGE)
    return CORE if len(relative.parts) == 1 else relative.parts[0]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _part_folders() -> set[str]:
    return {folder.name for folder in PACKAGE.iterdir() if (folder / "__init__.py").is_file()}


def _edges(modules: list[Path]) -> dict[str, dict[str, set[str]]]:
    """part -> {part it imports: {"module -> module", ...}}, across parts only."""
    edges: dict[str, dict[str, set[str]]] = {}
    for module in modules:
        for imported in imports_of(module):
            source, target = _part(module), _part(imported)
            if target is not None and target != source:
                pair = f"{module.relative_to(PROJECT)} -> {imported.relative_to(PROJECT)}"
                edges.setdefault(source, {}).setdefault(target, set()).add(pair)
    return edges


def _example(pairs: set[str]) -> str:
    """One "module -> module" import of an edge, a module's rather than a package __init__'s if any."""
    return min(pairs, key=lambda pair: (pair.endswith("__init__.py"), pair))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def _private_reaches(module: Path, text: str | None = None) -> list[str]:
    """Names with a leading underscore that `module` (its source: `text`, or the file) takes from a
    module of another part: `from imgclf.x.y import _name`, `from imgclf.x import _module`, and
    `name._attr` where name is bound to a project module of another part by an import."""
    tree = ast.parse(module.read_text() if text is None else text, str(module))
    own, found, bound = _part(module), [], {}

    def foreign(file: Path | None) -> bool:
        return file is not None and _part(file) not in (None, own)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = module_file(f"{node.module}.{alias.name}")  # the name is itself a module
                if foreign(submodule):
                    bound[alias.asname or alias.name] = node.module + "." + alias.name
                if foreign(submodule or module_file(node.module)) and (
                        _is_private(alias.name) or any(map(_is_private, node.module.split(".")))):
                    found.append(f"from {node.module} import {alias.name} (line {node.lineno})")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if foreign(module_file(alias.name)) and any(map(_is_private, alias.name.split("."))):
                    found.append(f"import {alias.name} (line {node.lineno})")
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:  # `import imgclf.data.images` binds `imgclf`
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and (dotted := _dotted(node.value)):
            head, *rest = dotted.split(".")
            if head in bound and foreign(module_file(".".join([bound[head], *rest]))):
                found.append(f"{dotted}.{node.attr} (line {node.lineno})")
    return found


def _dotted(node: ast.expr) -> str | None:
    """a.b.c for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (head := _dotted(node.value)):
        return f"{head}.{node.attr}"
    return None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _section(text: str, heading: str) -> str:
    match = re.search(rf"(?ms)^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text)
    assert match, f"docs/pipeline.md has no '## {heading}' section"
    return match.group(1)


def _doc_map() -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    """From docs/pipeline.md's Parts section: the part folders of its tree, its arrows
    (`part -> a, b  why`), and its table of the parts each stage imports."""
    section = _section(PIPELINE_DOC.read_text(), "Parts")
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2, "the Parts section has its folder tree and its arrows, each in a code block"
    tree, arrows = blocks[0], blocks[1]
    folders = set(re.findall(r"(?m)^  ([a-z_]+)/", tree))  # imgclf/'s folders, two spaces in
    graph = {}
    for source, targets in re.findall(r"(?m)^(\w+)\s+->\s+(.*?)(?:\s{2,}.*)?$", arrows):
        graph[source] = set(re.findall(r"\w+", targets)) - {"none"}
    stages = {}
    for stage, parts in re.findall(r"(?m)^\| (\w+) \| ([\w, ]+) \|", section):
        if stage != "stage":
            stages[stage] = {part.strip() for part in parts.split(",")}
    return folders, graph, stages


def test_the_core_imports_no_part():
    core = [module for module in _modules() if _part(module) == CORE]
    assert len(core) >= 5  # params, layout, artifacts, errors, runtime at the least
    reaches = _edges(core).get(CORE, {})
    assert not reaches, f"core modules import parts: {sorted(p for pairs in reaches.values() for p in pairs)}"


def test_the_parts_import_graph_has_no_cycle():
    edges = _edges(_modules())
    assert edges, "no part imports another: the import scan found nothing"
    cycle = _cycle({source: set(targets) for source, targets in edges.items()})
    assert cycle is None, (f"the parts import each other in a cycle {' -> '.join(cycle)}: "
                           + "; ".join(_example(edges[a][b]) for a, b in zip(cycle, cycle[1:])))


def test_no_module_reaches_into_another_part_through_a_private_name():
    found = {str(module.relative_to(PROJECT)): reaches for module in _modules()
             if (reaches := _private_reaches(module))}
    assert not found, f"private names taken from another part: {found}"


def test_the_docs_map_names_every_part_folder_and_only_those():
    folders, _, _ = _doc_map()
    assert folders == _part_folders(), (
        f"docs/pipeline.md's map: add {sorted(_part_folders() - folders)}, remove {sorted(folders - _part_folders())}")


def test_the_docs_arrows_are_the_imports_between_parts():
    _, documented, _ = _doc_map()
    edges = _edges(_modules())
    for part in sorted(_part_folders() | {CORE}):
        actual = set(edges.get(part, {}))
        wrong = documented.get(part, {"(no line)"}) ^ actual
        examples = sorted(_example(edges[part][target]) for target in wrong & actual)
        assert not wrong, f"docs/pipeline.md: `{part} -> ...` should name {sorted(actual)}; imports: {examples}"


def test_the_docs_table_names_the_parts_each_stageimports_of():
    _, _, documented = _doc_map()
    scripts = sorted(p for p in (PROJECT / "stages").glob("*.py") if p.name != "__init__.py")
    assert set(documented) == {script.stem for script in scripts}
    for script in scripts:
        actual = {_part(module) for module in imports_of(script)} - {None}
        assert documented[script.stem] == actual, f"docs/pipeline.md: stage {script.stem} imports {sorted(actual)}"


# The checks above are only as good as the helpers; each must see what it is for.
def test_the_cycle_finder_reports_a_cycle_and_passes_a_tree():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("source, caught", [
    ("from imgclf.data.images import _load_plain_jpeg\n", True),
    ("from imgclf.data import images\nimages._plain_jpeg_frame(b'')\n", True),
    ("import imgclf.data.images as images\nimages._decode\n", True),
    ("import imgclf.data.images\nimgclf.data.images._decode\n", True),
    ("from imgclf import artifacts\nartifacts._WRITE_BYTES\n", True),  # the core is a part too
    ("from imgclf.data.images import load_image\nload_image._private\n", False),
    ("from imgclf.train.model import _private\n", False),  # the module's own part
    ("import numpy as np\nnp._NoValue\n", False),  # not a project module
])
def test_a_private_name_from_another_part_is_caught(source, caught):
    module = PACKAGE / "train" / "probe.py"  # a train module, whose source is `source`
    assert bool(_private_reaches(module, source)) is caught
