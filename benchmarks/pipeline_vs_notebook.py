"""Benchmark (not a test): `dvc repro` from a fresh clone against the notebook it replaces.

    python benchmarks/pipeline_vs_notebook.py [--runs 3] [--mnist ../shared/data/mnist] [--epochs 5]

Alternates, --runs times: (a) benchmarks/mnist_notebook.py on the real MNIST files; (b) a
fresh clone of this repository's HEAD with data.dataset: mnist, data.mirror at the same folder
and --epochs, timed over `dvc repro`. The lessons' model and settings are params.yaml's
defaults (MLP of 128 relu units, Adam, batch 32). Prints min and median wall time of each,
their ratio, both test accuracies, fit samples/s, and for the pipeline each stage's own time
(its process, start to exit) beside DVC's time, each stage's peak RSS and the disk its outputs
take, and the time of a no-op `dvc repro`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
STAGES = ("download", "preprocess", "split", "train", "evaluate", "report")

# Put first on PATH for `dvc repro`: DVC runs each stage's `python -m stages.X` through it, and it
# records the stage process's wall time and peak RSS (its children included: evaluate's scoring process).
WRAPPER = """#!{python}
import resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call([{python!r}, *sys.argv[1:]])
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open({log!r}, "a") as log:
    log.write(f"{{' '.join(sys.argv[1:])}}\\t{{seconds}}\\t{{peak_kib}}\\n")
sys.exit(rc)
"""


def run_notebook(mnist: Path, epochs: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(PROJECT / "benchmarks/mnist_notebook.py"), str(mnist),
                          "--epochs", str(epochs)], capture_output=True, text=True, check=True, env=_quiet_env())
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall": time.perf_counter() - start, **result}


def fresh_clone(root: Path, mnist: Path, epochs: int) -> Path:
    clone = root / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["data"].update(dataset="mnist", mirror=str(mnist))
    params["train"]["epochs"] = epochs
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return clone


def run_pipeline(root: Path, mnist: Path, epochs: int) -> dict:
    clone = fresh_clone(root, mnist, epochs)
    bin_dir, log = root / "bin", root / "stages.tsv"
    bin_dir.mkdir(exist_ok=True)
    log.unlink(missing_ok=True)
    wrapper = bin_dir / "python"
    wrapper.write_text(WRAPPER.format(python=sys.executable, log=str(log)))
    wrapper.chmod(0o755)
    env = {**_quiet_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    out = subprocess.run(["dvc", "repro"], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"dvc repro failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    stages = {}
    for line in log.read_text().splitlines():
        cmd, seconds, peak_kib = line.split("\t")
        stages[cmd.removeprefix("-m stages.")] = {"seconds": float(seconds), "peak_mib": int(peak_kib) / 1024}
    fit = re.search(r"fit (\d+) samples in ([\d.]+) s", out.stdout)
    accuracy = json.loads((clone / "metrics/eval.json").read_text())["accuracy"]
    return {"wall": wall, "accuracy": accuracy, "stages": stages, "clone": clone,
            "fit_samples_per_second": int(fit[1]) / float(fit[2]) if fit else float("nan")}


def noop_repro(clone: Path, times: int = 3) -> list[float]:
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=clone, env=_quiet_env(), check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def output_sizes(clone: Path) -> dict[str, float]:
    """MiB of each stage's outputs (as dvc.yaml lists them) in the workspace."""
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    sizes = {}
    for name, stage in stages.items():
        paths = [next(iter(o)) if isinstance(o, dict) else o for key in ("outs", "metrics") for o in stage.get(key, [])]
        sizes[name] = sum(_size(clone / p) for p in paths) / 2**20
    return sizes


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _summary(values: list[float]) -> str:
    return f"min {min(values):6.1f} s   median {statistics.median(values):6.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mnist", type=Path, default=PROJECT.parent / "shared/data/mnist")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    mnist = args.mnist.resolve()
    if not (mnist / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"error: no MNIST IDX files in {mnist}; pass --mnist FOLDER with the four .gz files")
    notebook, pipeline = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            notebook.append(run_notebook(mnist, args.epochs))
            pipeline.append(run_pipeline(Path(tmp), mnist, args.epochs))
            print(f"run {i + 1}: notebook {notebook[-1]['wall']:.1f} s, pipeline {pipeline[-1]['wall']:.1f} s; "
                  f"fit samples/s {notebook[-1]['fit_samples_per_second']:.0f} and "
                  f"{pipeline[-1]['fit_samples_per_second']:.0f}", flush=True)
        clone = pipeline[-1]["clone"]
        noop = noop_repro(clone)
        sizes = output_sizes(clone)
        cache = _size(clone / ".dvc/cache") / 2**20

    nb_wall, pl_wall = [r["wall"] for r in notebook], [r["wall"] for r in pipeline]
    print(f"\nMNIST, MLP 128 relu, Adam, batch 32, {args.epochs} epochs, {args.runs} alternating runs, "
          f"{os.cpu_count()} cores")
    print(f"notebook  {_summary(nb_wall)}   test accuracy {[r['accuracy'] for r in notebook]}")
    print(f"pipeline  {_summary(pl_wall)}   test accuracy {[r['accuracy'] for r in pipeline]}")
    # A run's notebook and pipeline, a minute apart, share the machine's speed of the moment: the
    # median of each run's ratio is steadier than the ratio of medians where that speed drifts.
    print(f"pipeline / notebook (medians): {statistics.median(pl_wall) / statistics.median(nb_wall):.2f} "
          f"(median of each run's ratio {statistics.median(p / n for n, p in zip(nb_wall, pl_wall)):.2f})")
    nb_fit = statistics.median(r["fit_samples_per_second"] for r in notebook)
    pl_fit = statistics.median(r["fit_samples_per_second"] for r in pipeline)
    paired = statistics.median(p["fit_samples_per_second"] / n["fit_samples_per_second"]
                               for n, p in zip(notebook, pipeline))
    print(f"fit samples/s (medians): notebook {nb_fit:.0f}, pipeline train stage {pl_fit:.0f} "
          f"({pl_fit / nb_fit:.2f}x; median of each run's ratio {paired:.2f}x)")
    print(f"\n{'stage':<11} {'own s (median)':>14} {'peak RSS MiB':>13} {'outputs MiB':>12}")
    stage_total = []
    for name in STAGES:
        own = [r["stages"][name]["seconds"] for r in pipeline if name in r["stages"]]
        peak = max(r["stages"][name]["peak_mib"] for r in pipeline if name in r["stages"])
        print(f"{name:<11} {statistics.median(own):>14.2f} {peak:>13.0f} {sizes.get(name, 0):>12.1f}")
    for r in pipeline:
        stage_total.append(sum(s["seconds"] for s in r["stages"].values()))
    dvc_own = [wall - own for wall, own in zip(pl_wall, stage_total)]
    print(f"{'stages':<11} {statistics.median(stage_total):>14.2f}")
    print(f"{'DVC itself':<11} {statistics.median(dvc_own):>14.2f}   (hashing, caching, lock file; "
          f"{len(STAGES)} stages)")
    print(f"DVC cache after a run: {cache:.0f} MiB")
    print(f"no-op dvc repro: {_summary(noop)}")


if __name__ == "__main__":
    main()
