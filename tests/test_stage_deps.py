"""dvc.yaml lists, for each stage, exactly the project modules its script imports (directly or through others)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT
from tests.dvc_project import PROJECT_FILES, dvc, make_project
from tests.project_imports import import_closure, module_file


def _stages() -> dict[str, dict]:
    return yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def _script(stage: dict) -> Path:
    (module,) = re.findall(r"python -m ([\w.]+)", stage["cmd"])
    return module_file(module)


def test_each_stage_declares_exactly_the_code_it_imports():
    for name, stage in _stages().items():
        code = {dep for dep in stage["deps"] if dep.endswith(".py")}
        expected = import_closure(_script(stage))
        assert code == expected, (
            f"stage {name}: add to dvc.yaml {sorted(expected - code)}, remove {sorted(code - expected)}")


def test_import_closure_follows_imports_through_other_modules():
    closure = import_closure(PROJECT / "stages" / "train.py")
    # train imports imgclf.train.training, which imports imgclf.train.batches; and imgclf.errors through imgclf.params
    assert {"stages/train.py", "imgclf/train/training.py", "imgclf/train/batches.py", "imgclf/errors.py",
            "imgclf/__init__.py", "stages/__init__.py"} <= closure
    assert "imgclf/report/render.py" not in closure


@pytest.mark.slow
def test_touching_any_imported_module_makes_its_stages_stale(tmp_path):
    repo = make_project(tmp_path)
    shutil.copy2(PROJECT / "dvc.lock", repo / "dvc.lock")
    stages = _stages()
    modules = sorted(set().union(*(import_closure(_script(s)) for s in stages.values())))
    assert all(m.split("/")[0] in PROJECT_FILES for m in modules)
    untouched = json.dumps(json.loads(dvc(repo, "status", "--json").stdout))
    # the committed dvc.lock is current: before any edit, dvc status finds no code change
    assert not [m for m in modules if f'"{m}"' in untouched], untouched
    for module in modules:
        (repo / module).write_text((repo / module).read_text() + "# touched\n")
    # every module touched at once: each stage lists as changed exactly the modules of its closure
    status = json.loads(dvc(repo, "status", "--json").stdout)
    for name, stage in stages.items():
        changed = {dep for change in status.get(name, []) if isinstance(change, dict)
                   for dep in change.get("changed deps", {}) if dep in modules}
        expected = import_closure(_script(stage))
        assert changed == expected, (f"stage {name}: stale in dvc status, not imported: {sorted(changed - expected)}; "
                                     f"imported, not stale: {sorted(expected - changed)}")
