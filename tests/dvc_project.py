"""Helpers for tests that run the real dvc commands on a copy of the project in a temporary git repo."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT

PROJECT_FILES = ("dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore", ".dvcignore", "stages", "imgclf", "photos",
                 "scripts")


def make_project(repo: Path, params: dict | None = None) -> Path:
    """Copy the project into `repo`, init git and DVC, set params ({"train.epochs": 2}), commit."""
    for name in PROJECT_FILES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    for key, value in (params or {}).items():
        set_param(repo, key, value)
    run(repo, "git", "init", "-q")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    commit(repo, "project")
    return repo


def make_data_template(repo: Path) -> Path:
    """make_project on the default params, then the data stages (download, preprocess, split) run and committed:
    the state a team member's clone has once the data is in DVC. Tests take copies of it (copy_project)."""
    make_project(repo)
    dvc(repo, "repro", "split")
    commit(repo, "data stages")
    return repo


def copy_project(template: Path, repo: Path, params: dict | None = None) -> Path:
    """A copy of `template` (git history, DVC cache and outputs) in `repo`, its own from then on; set params
    ({"train.epochs": 2}) and commit them. Set only params the data stages do not read: they stay up to date."""
    def ignore(folder: str, names: list[str]) -> list[str]:
        # DVC's locks and per-run state: recreated on use, never shared between two repositories
        return ["tmp"] if Path(folder) == template / ".dvc" else []

    shutil.copytree(template, repo, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    for key, value in (params or {}).items():
        set_param(repo, key, value)
    if params:
        commit(repo, "params")
    return repo


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This interpreter's environment first on PATH (dvc runs `python -m stages...`); no outside MLflow/DVC."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    out.update(extra or {})
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out.update(GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    return out


def run(repo: Path, *args: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=repo, env=env(extra_env), capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(repo: Path, *args: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, "-m", "dvc", *args, check=check, extra_env=extra_env)


def commit(repo: Path, message: str) -> None:
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", message)


def reset(repo: Path, rev: str = "HEAD") -> None:
    """Back to commit `rev`: tracked files from git, untracked leftovers removed, every output from DVC's cache."""
    run(repo, "git", "reset", "-q", "--hard", rev)
    run(repo, "git", "clean", "-qfd")  # not -x: DVC's outputs and the MLflow store are git-ignored and stay
    dvc(repo, "checkout", "-q", "--force")


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", result.stdout))


def stages_restored(result: subprocess.CompletedProcess) -> set[str]:
    """Stages DVC restored from its run-cache instead of running them."""
    return set(re.findall(r"Stage '(\w+)' is cached - skipping run", result.stdout))


def set_param(repo: Path, dotted: str, value) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    *parents, leaf = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def mlflow_runs(repo: Path):
    """The MLflow client on the repo's store and the runs of the project's experiment, oldest first."""
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("image-classifier")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def training_runs(runs: list) -> list:
    return [r for r in runs if r.data.tags.get("stage") == "train"]


def model_run_id(repo: Path) -> str:
    """The MLflow training run of the model in the repo's models/, as evaluate finds it: the newest finished
    training run tagged with the sha256 of models/model.keras (model.json holds no run id)."""
    sha = json.loads((repo / "models/model.json").read_text())["model_sha256"]
    assert sha == hashlib.sha256((repo / "models/model.keras").read_bytes()).hexdigest()
    found = [r for r in training_runs(mlflow_runs(repo)[1])
             if r.data.tags.get("model.sha256") == sha and r.info.status == "FINISHED"]
    assert found, f"no finished training run tagged model.sha256 = {sha}"
    return found[-1].info.run_id


def evaluations(runs: list, training_run_id: str) -> list:
    """The evaluation runs nested under one training run."""
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == training_run_id]


def experiments(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` as {name or rev: data}."""
    rows = {}
    for baseline in json.loads(dvc(repo, "exp", "show", "--json").stdout):
        rows[baseline["rev"]] = baseline["data"]
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                rows[rev["name"]] = rev["data"]
    return rows
