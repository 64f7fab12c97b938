"""The README and docs/ guide: every link lands on a file and heading, every command names what exists."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import PROJECT

DOCS = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    headings = re.findall(r"(?m)^#{1,6} (.+)$", text)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def _bash_lines(path: Path) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    joined = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line.split(" #")[0].strip() for line in joined if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_top_fits_on_one_screen_and_points_into_docs():
    readme = (PROJECT / "README.md").read_text()
    top = readme.split("\n## Reference")[0].splitlines()
    assert len(top) <= 55 and max(map(len, top)) <= 120  # what it is, setup, tests and the three ways in
    for heading in ("## Setup", "## Three ways in"):
        assert heading in top
    assert "pip install -r requirements.txt" in top and "dvc repro" in top and "python -m pytest" in readme
    linked = {Path(target.split("#")[0]).name for target in re.findall(r"\]\((docs/[^)]+)\)", readme)}
    assert linked == {path.name for path in DOCS[1:]}  # every reference page is reachable from the top


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_relative_link_lands_on_a_file_and_heading(path):
    links = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", path.read_text(), flags=re.S))
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    for link in relative:
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{path.name}: {link} names no file"
        if anchor:
            assert anchor in _anchors(file), f"{path.name}: {link} names no heading of {file.name}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_commands_name_modules_and_scripts_that_exist(path):
    for line in _bash_lines(path):
        words = shlex.split(line.replace("$(", "").replace(")", ""))
        for i, word in enumerate(words[:-1]):
            if word == "-m" and words[i - 1].startswith("python"):
                assert importlib.util.find_spec(words[i + 1]) is not None, f"{path.name}: {line}"
            if word == "bash" and words[i + 1].endswith(".sh"):
                assert (PROJECT / words[i + 1]).is_file(), f"{path.name}: {line}"
