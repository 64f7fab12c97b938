"""Benchmark (not a test): the photo CNN's frontier, held-out accuracy against minutes of `dvc repro`.

    python benchmarks/photo_cnn.py --photos ../shared/data/clothing-trainval \
        --point HEAD --point HEAD:train.epochs=15 --point OLD_REV:train.epochs=10 [--seeds 42,1]

Each --point is a git revision of this checkout, then, after a colon, params to set (comma-separated
key=value, YAML values), on top of data.dataset image_folder, data.path --photos and train.model cnn;
everything else is that revision's params.yaml as committed, so HEAD alone is the photo CNN at its
defaults and an older revision is the CNN of its day. Each revision is cloned once into a temporary
folder; each point then runs the whole pipeline from scratch (`dvc repro --force`: download,
preprocess, split, train, evaluate, report) once per seed, the points in turn, so that a machine's
drift weighs on all of them alike. It prints, per point and seed, the held-out accuracy
(metrics/eval.json), the epochs run, the wall time and the CPU time of the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]


def parse_point(text: str) -> tuple[str, dict]:
    rev, _, assignments = text.partition(":")
    overrides = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    return rev, overrides


def clone(rev: str, root: Path, photos: Path) -> Path:
    folder = root / f"rev-{len(list(root.iterdir()))}"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(folder)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=folder, check=True)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["data"].update(dataset="image_folder", path=str(photos.resolve()))
    params["train"]["model"] = "cnn"
    (folder / "params.base.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def run_point(folder: Path, overrides: dict, seed: int) -> dict:
    # Every point starts from the params clone() wrote, not from the point run before it in this folder.
    params = yaml.safe_load((folder / "params.base.yaml").read_text())
    for key, value in {**overrides, "seed": seed}.items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "DVC_NO_ANALYTICS": "1"}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(["dvc", "repro", "--force", "-q"], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    evaluation = json.loads((folder / "metrics" / "eval.json").read_text())
    trained = json.loads((folder / "metrics" / "train.json").read_text())
    return {"accuracy": evaluation["accuracy"], "epochs_run": trained.get("epochs_run"), "wall_min": wall / 60,
            "cpu_min": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of class folders, or train/ validation/")
    parser.add_argument("--point", action="append", required=True, help="REV[:key=value,...]")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds, each point run once per seed")
    args = parser.parse_args()
    points = [parse_point(p) for p in args.point]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = {}
        for rev, _ in points:
            if rev not in folders:
                folders[rev] = clone(rev, root, args.photos)
        print("| point | seed | epochs run | held-out accuracy | wall, min | CPU, min |")
        print("| --- | --- | --- | --- | --- | --- |")
        for seed in (int(s) for s in args.seeds.split(",")):
            for text, (rev, overrides) in zip(args.point, points, strict=True):
                r = run_point(folders[rev], overrides, seed)
                print(f"| {text} | {seed} | {r['epochs_run']} | {r['accuracy']:.4f} | {r['wall_min']:.2f} | "
                      f"{r['cpu_min']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
