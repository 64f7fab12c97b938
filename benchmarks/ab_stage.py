"""Benchmark (not a test): one stage run two ways, side by side: what a switch or a code change buys.

    python benchmarks/ab_stage.py evaluate --data mnist --b-env IMGCLF_GC_TUNING=0 [--runs 6]
    python benchmarks/ab_stage.py preprocess --data photos --b-rev HEAD~1 [--runs 6]

Builds a project from this checkout's HEAD in a temporary folder (`--data mnist`: the real MNIST
files of --mnist as data.mirror, --epochs; `--data photos`: --images generated 400x533 JPEGs, as
benchmarks/preprocess_images.py makes them), runs `dvc repro` up to the stage's inputs, and copies
it: A is HEAD's code, B the same project with --b-env set and/or the code (stages/, imgclf/) of
--b-rev. Then it runs `python -m stages.STAGE` in A and B, alternating (A B, B A, A B, ...) so that
a machine's drift weighs on both alike, and prints each side's min and median wall time and their
ratio (B / A: above 1, B is slower).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from benchmarks.preprocess_images import generate  # noqa: E402 (this checkout's benchmarks)

UPSTREAM = {"download": None, "preprocess": "download", "split": "preprocess", "train": "split",
            "evaluate": "train", "report": "evaluate"}


def build_project(root: Path, args: argparse.Namespace) -> Path:
    project = root / "a"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(project)], check=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    if args.data == "mnist":
        params["data"].update(dataset="mnist", mirror=str(args.mnist.resolve()))
    else:
        photos = root / "photos"
        generate(photos, args.images)
        params["data"].update(dataset="image_folder", path=str(photos), image_size=[args.size, args.size])
    params["train"]["epochs"] = args.epochs
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if upstream := UPSTREAM[args.stage]:
        subprocess.run(["dvc", "repro", "-q", upstream], cwd=project, env=_quiet_env(), check=True)
    return project


def variant(project: Path, rev: str | None) -> Path:
    """A copy of the project, with the code of `rev` (stages/, imgclf/) when given."""
    b = project.parent / "b"
    shutil.copytree(project, b, symlinks=True)
    if rev:
        for folder in ("stages", "imgclf"):
            shutil.rmtree(b / folder)
        archive = subprocess.run(["git", "-C", str(PROJECT), "archive", rev, "stages", "imgclf"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(b)], input=archive, check=True)
        _drop_unknown_params(b / "params.yaml", rev)
    return b


def _drop_unknown_params(path: Path, rev: str) -> None:
    """Keep only the params `rev` knows (its code refuses an unknown key), with this project's values."""
    known = yaml.safe_load(subprocess.run(["git", "-C", str(PROJECT), "show", f"{rev}:params.yaml"],
                                          capture_output=True, check=True, text=True).stdout)

    def keep(ours: dict, theirs: dict) -> dict:
        return {k: keep(v, theirs[k]) if isinstance(v, dict) else v for k, v in ours.items() if k in theirs}

    path.write_text(yaml.safe_dump(keep(yaml.safe_load(path.read_text()), known), sort_keys=False))


def run_stage(project: Path, stage: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=project, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _quiet_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(UPSTREAM))
    parser.add_argument("--data", choices=["mnist", "photos"], default="mnist")
    parser.add_argument("--mnist", type=Path, default=PROJECT.parent / "shared/data/mnist")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--b-rev", help="a git revision whose code B runs")
    parser.add_argument("--runs", type=int, default=6, help="runs of each side")
    args = parser.parse_args()
    b_env = dict(pair.split("=", 1) for pair in args.b_env)
    with tempfile.TemporaryDirectory() as tmp:
        a = build_project(Path(tmp), args)
        b = variant(a, args.b_rev)
        sides = {"A": (a, _quiet_env()), "B": (b, _quiet_env(**b_env))}
        times: dict[str, list[float]] = {"A": [], "B": []}
        run_stage(a, args.stage, sides["A"][1])  # warm the page cache and the bytecode, unmeasured
        run_stage(b, args.stage, sides["B"][1])
        for i in range(args.runs):
            for side in ("AB" if i % 2 == 0 else "BA"):
                project, env = sides[side]
                times[side].append(run_stage(project, args.stage, env))
            print(f"run {i + 1}: A {times['A'][-1]:.2f} s, B {times['B'][-1]:.2f} s", flush=True)
    label = " ".join([*args.b_env, *([f"code of {args.b_rev}"] if args.b_rev else [])])
    print(f"\nstage {args.stage} on {args.data}, {args.runs} alternations; B: {label}")
    for side in "AB":
        print(f"  {side}: min {min(times[side]):.2f} s, median {statistics.median(times[side]):.2f} s")
    print(f"  B / A: min {min(times['B']) / min(times['A']):.3f}, "
          f"median {statistics.median(times['B']) / statistics.median(times['A']):.3f}")


if __name__ == "__main__":
    main()
