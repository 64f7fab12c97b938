"""Each training option of the lessons through `dvc exp run`, to metrics and an MLflow run (small and fast)."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from imgclf.params import load_params
from tests.conftest import PROJECT
from tests.dvc_project import copy_project, dvc, evaluations, experiments, mlflow_runs, run, training_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory, data_template):
    params = {"train.epochs": 2, "train.hidden_units": [32]}
    return copy_project(data_template, tmp_path_factory.mktemp("lessons"), params)


def _run_experiment(repo, name: str, *sets: str) -> tuple[dict, object]:
    """Run one experiment from the baseline params; return its `dvc exp show` row and its MLflow run."""
    run(repo, "git", "checkout", "-q", "--", "params.yaml")  # exp run leaves its params in the workspace
    dvc(repo, "exp", "run", "-n", name, *[arg for s in sets for arg in ("-S", s)])
    row = experiments(repo)[name]
    _, runs = mlflow_runs(repo)
    tagged = [r for r in training_runs(runs) if r.data.tags.get("dvc.exp_name") == name]
    assert len(tagged) == 1, f"expected one MLflow training run tagged {name}, found {len(tagged)}"
    (tracked,) = tagged
    assert tracked.info.status == "FINISHED"
    (scored,) = evaluations(runs, tracked.info.run_id)
    accuracy = row["metrics"]["metrics/eval.json"]["data"]["accuracy"]
    assert scored.data.metrics["test_accuracy"] == pytest.approx(accuracy)
    return row, tracked


def _param(row: dict, dotted: str):
    node = row["params"]["params.yaml"]["data"]
    for key in dotted.split("."):
        node = node[key]
    return node


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_each_optimizer(repo, optimizer):
    extra = ("train.momentum=0.9", "train.nesterov=true") if optimizer == "sgd" else ()
    row, tracked = _run_experiment(repo, f"opt-{optimizer}", f"train.optimizer={optimizer}", *extra)
    assert _param(row, "train.optimizer") == optimizer
    assert tracked.data.params["train.optimizer"] == optimizer
    # Keras's own optimizer config, logged by MLflow's callback (RMSprop calls itself rm_sprop)
    assert tracked.data.params["optimizer_name"].replace("_", "").lower() == optimizer
    if extra:
        assert tracked.data.params["train.momentum"] == "0.9" and tracked.data.params["train.nesterov"] == "True"


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [("1", 1293), ("16", 81), ("full", 1)])
def test_each_gradient_descent_mode(repo, batch_size, steps_per_epoch):
    row, tracked = _run_experiment(repo, f"batch-{batch_size}", f"train.batch_size={batch_size}")
    assert str(_param(row, "train.batch_size")) == batch_size
    assert tracked.data.params["train.batch_size"] == batch_size
    train = row["metrics"]["metrics/train.json"]["data"]
    assert train["epochs_run"] == 2
    assert train["optimizer_steps"] == 2 * steps_per_epoch  # 1293 training digits
    assert tracked.data.metrics["final_optimizer_steps"] == 2 * steps_per_epoch
    # TensorFlow's threads per op unless asked otherwise (another count can change the weights)
    assert tracked.data.params["train.op_threads"] == "0" and tracked.data.tags["tf.op_threads"] == "default"


def test_logreg_baseline(repo):
    row, tracked = _run_experiment(repo, "logreg", "train.model=logreg")
    assert _param(row, "train.model") == "logreg"
    assert tracked.data.params["train.model"] == "logreg"
    assert row["metrics"]["metrics/eval.json"]["data"]["accuracy"] > 0.9
    # scikit-learn fits on the CPU in one process, whatever devices TensorFlow sees
    assert tracked.data.tags["distribute.strategy"] == "none" and tracked.data.tags["distribute.replicas"] == "1"
    assert "tf.op_threads" not in tracked.data.tags  # no TensorFlow op to thread


def _readme_experiment_commands() -> list[str]:
    """Every `dvc exp run -S ...` line of the README and docs/ code blocks."""
    text = "\n".join(path.read_text() for path in [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))])
    # a command continued with a backslash is one command
    blocks = [block.replace("\\\n", " ") for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith("dvc exp run") and " -S " in line]


def test_readme_commands_set_valid_params(tmp_path):
    # DVC's own -S machinery (Hydra overrides and sweeps) applied to a copy of params.yaml.
    from dvc.utils.hydra import apply_overrides, get_hydra_sweeps

    commands = _readme_experiment_commands()
    assert len(commands) >= 6
    for command in commands:
        words = shlex.split(command)
        overrides = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
        sweeps = get_hydra_sweeps({"params.yaml": overrides})
        assert len(sweeps) >= 1 and ("--queue" in words or len(sweeps) == 1), command
        for sweep in sweeps:
            path = tmp_path / "params.yaml"
            shutil.copy(PROJECT / "params.yaml", path)
            apply_overrides(path, sweep["params.yaml"])
            load_params(path)


def test_readme_assignment_runs_as_written(repo):
    (command,) = [c for c in _readme_experiment_commands() if "-n assignment" in c]
    run(repo, "git", "checkout", "-q", "--", "params.yaml")
    dvc(repo, *shlex.split(command)[1:])
    row = experiments(repo)["assignment"]
    assert _param(row, "train.hidden_units") == [128, 64]
    assert _param(row, "train.activation") == "leaky_relu" and _param(row, "train.optimizer") == "rmsprop"
    assert _param(row, "train.augmentation.rotation") == 10
    assert row["metrics"]["metrics/train.json"]["data"]["epochs_run"] == 10


def _documented_comparison() -> list[str]:
    """The README's `dvc exp show` command, which docs/lessons.md gives too ("the columns that matter")."""
    def commands(path) -> set[str]:
        blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
        return {line.strip() for block in blocks for line in block.splitlines()
                if line.strip().startswith("dvc exp show ")}

    (command,) = commands(PROJECT / "README.md")
    assert command in commands(PROJECT / "docs" / "lessons.md")
    return shlex.split(command)[1:]


def _table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """A `dvc exp show` table as its header and {experiment name: {column: cell}} (cells apart by 2+ spaces)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("─")]
    header, *rows = [re.split(r"\s{2,}", line) for line in lines]
    named = {}
    for cells in rows:
        assert len(cells) == len(header), (header, cells)
        if match := re.search(r"\[(.+)\]$", cells[0]):
            named[match.group(1)] = dict(zip(header, cells))
    return header, named


def _width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def test_documented_comparison_fits_160_columns(tmp_path, data_template):
    repo = copy_project(data_template, tmp_path / "compare", {"train.epochs": 1, "train.hidden_units": [16]})
    dvc(repo, "exp", "run", "-n", "momentum", "-S", "train.optimizer=sgd", "-S", "train.momentum=0.9")
    run(repo, "git", "checkout", "-q", "--", "params.yaml")
    dvc(repo, "exp", "run", "-n", "batch-16", "-S", "train.batch_size=16")
    accuracy = {name: row["metrics"]["metrics/eval.json"]["data"]["accuracy"]
                for name, row in experiments(repo).items() if name in ("momentum", "batch-16")}
    screen = {"COLUMNS": "160"}  # what rich takes for the terminal's width, whatever runs the tests
    # Without a terminal DVC prints the table it would page: at its own width, however wide.
    assert _width(dvc(repo, "exp", "show", extra_env=screen).stdout) > 160  # everything: the check can fail
    command = _documented_comparison()
    paged = dvc(repo, *command, extra_env=screen).stdout
    assert _width(paged) <= 160, paged
    # Fitted to the terminal instead, nothing is left to collapse to '…'.
    printed = dvc(repo, *command, "--no-pager", extra_env=screen).stdout
    assert "…" not in printed and printed == paged, printed
    header, rows = _table(printed)
    # the experiment, the test figures and the params that differ; no dependency hash, no other metric
    assert header == ["Experiment", "accuracy", "loss", "train.optimizer", "train.momentum", "train.batch_size"]
    assert rows.keys() == accuracy.keys()
    for name, cells in rows.items():
        assert float(cells["accuracy"]) == pytest.approx(accuracy[name], abs=1e-5)
    assert (rows["momentum"]["train.optimizer"], rows["momentum"]["train.momentum"]) == ("sgd", "0.9")
    # DVC shows params.yaml as written: the optimizer left at auto (MLflow logs what it resolved to, adam)
    assert (rows["batch-16"]["train.optimizer"], rows["batch-16"]["train.batch_size"]) == ("auto", "16")

    # `dvc plots diff` renders into dvc_plots/, which git ignores
    status = run(repo, "git", "status", "--porcelain").stdout
    dvc(repo, "plots", "diff", "momentum", "batch-16")
    assert (repo / "dvc_plots" / "index.html").is_file()
    assert run(repo, "git", "status", "--porcelain").stdout == status
