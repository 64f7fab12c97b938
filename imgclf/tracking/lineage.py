"""What ties an MLflow run to the exact data and code it came from: DVC hashes, the git commit, dirty or not."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import mlflow
import yaml
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from imgclf import layout
from imgclf.artifacts import SplitPart, file_md5

# The MLflow name of each split part, as the run page lists them.
CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def data_source(data) -> str:
    """A dataset input's source, from the `data` params: the photo folder of image_folder, else the dataset's name."""
    return data.path if data.dataset == "image_folder" else data.dataset


def log_part(part: str, arrays: SplitPart, source: str, run_ids: Iterable[str],
             md5: Mapping[str, str] | None = None) -> None:
    """Record a split part as a dataset input of these runs.

    Its digest is the images' hash in dvc.lock (the labels' is a tag); its source, the dataset
    name or photo folder it was made from. Train records the parts it fits on; evaluate records
    the test part it scores, on its own run and on the model's (which may meet several test sets).
    `md5` ({"x": ..., "y": ...}) passes the files' hashes where the caller has them already.
    """
    x_path, y_path = layout.part_files(layout.SPLIT_DIR, part)
    md5 = md5 or {"x": file_md5(x_path), "y": file_md5(y_path)}
    with warnings.catch_warnings():
        # a name or folder reads as a local source two ways ("file" and no scheme): either is it
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_numpy(arrays.x, targets=arrays.y, source=source, name=part,
                                         digest=md5["x"])
    # What mlflow.log_input logs, for finished runs too (a model's run is never reopened).
    logged = DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, CONTEXTS[part]),
                                                        InputTag(f"{y_path.name}.md5", md5["y"])])
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        client.log_inputs(run_id, datasets=[logged])


def data_version(lock: Path = Path("dvc.lock")) -> str | None:
    """The hash DVC recorded for the split data (data/split) in dvc.lock: what `dvc checkout` restores."""
    try:
        stages = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]
        return next(out["md5"] for out in stages["split"]["outs"] if out["path"] == layout.SPLIT_DIR.as_posix())
    except (OSError, KeyError, TypeError, StopIteration, yaml.YAMLError):
        return None


def workspace_dirty(folder: Path | None = None) -> bool | None:
    """Whether the project's tracked files differ from the commit, in the folder the stage runs in.

    That folder, not DVC_ROOT: a queued or --temp experiment runs in a copy with its own params.
    What the running pipeline writes itself (dvc.lock, the git-tracked metrics) does not count.
    """
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                              ":(exclude)dvc.lock", ":(exclude)metrics"], cwd=folder or Path.cwd(),
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.strip())


def checkout_hint(commit: str, dirty: bool | None, version: str | None, exp_name: str | None = None) -> str:
    """The commands that bring back a run's data, as its description says them.

    A DVC experiment is its own record of params and dvc.lock: `dvc exp apply` restores both and
    checks its outputs out. Otherwise the commit and `dvc checkout` do, when the workspace was clean.
    """
    if exp_name:
        hint = f"`dvc exp apply {exp_name}` (DVC experiment `{exp_name}`, based on commit {commit[:12]})"
    else:
        hint = f"`git checkout {commit[:12]} && dvc checkout {layout.SPLIT_DIR.as_posix()}`"
    if version:
        hint += f" (DVC version `{version}`)"
    if dirty and not exp_name:
        hint += "; the workspace had uncommitted changes, so the commit alone may not reproduce it"
    return hint


def run_checkout_hint(tags: Mapping[str, str]) -> str:
    """checkout_hint of a training run, from the tags train gave it (commit, git.dirty, DVC version and experiment)."""
    dirty = {"true": True, "false": False}.get(tags.get("git.dirty", ""))
    return checkout_hint(tags.get("mlflow.source.git.commit", "unknown"), dirty, tags.get("dvc.data_version"),
                         tags.get("dvc.exp_name"))
