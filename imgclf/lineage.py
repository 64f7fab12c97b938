"""What ties an MLflow run to the exact data and code it came from: DVC hashes, the git commit, dirty or not."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import mlflow
import numpy as np
import yaml

from imgclf import layout
from imgclf.artifacts import file_md5

# The MLflow name of each split part, as the run page lists them.
CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_part(part: str, arrays: tuple[np.ndarray, np.ndarray], source: str) -> None:
    """Record a split part as a dataset input of the active run.

    Its digest is the images' hash in dvc.lock (the labels' is a tag); its source, the dataset
    name or photo folder it was made from.
    """
    x_path, y_path = layout.part_files(layout.SPLIT_DIR, part)
    with warnings.catch_warnings():
        # a name or folder reads as a local source two ways ("file" and no scheme): either is it
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_numpy(arrays[0], targets=arrays[1], source=source, name=part,
                                         digest=file_md5(x_path))
    mlflow.log_input(dataset, context=CONTEXTS[part], tags={f"{y_path.name}.md5": file_md5(y_path)})


def data_version(lock: Path = Path("dvc.lock")) -> str | None:
    """The hash DVC recorded for the split data (data/split) in dvc.lock: what `dvc checkout` restores."""
    try:
        stages = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]
        return next(out["md5"] for out in stages["split"]["outs"] if out["path"] == layout.SPLIT_DIR.as_posix())
    except (OSError, KeyError, TypeError, StopIteration, yaml.YAMLError):
        return None


def workspace_dirty(root: Path) -> bool | None:
    """Whether tracked files differ from the commit (dvc.lock aside: the running pipeline is writing it)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return any(line[3:].strip() != "dvc.lock" for line in out.splitlines() if line.strip())


def checkout_hint(commit: str, dirty: bool | None, version: str | None) -> str:
    """The commands that bring back a run's data, as its description says them."""
    hint = f"`git checkout {commit[:12]} && dvc checkout {layout.SPLIT_DIR.as_posix()}`"
    if version:
        hint += f" (DVC version `{version}`)"
    if dirty:
        hint += "; the workspace had uncommitted changes, so the commit alone may not reproduce it"
    return hint
