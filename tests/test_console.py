"""A quiet console: the libraries' start-up lines stay out of a stage's output, params fail before TensorFlow,
and logreg never imports TensorFlow (each stage run here in a process of its own, as DVC runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgclf import console

ROOT = Path(__file__).resolve().parents[1]
ABSL_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796420410.566098   16160 port.cc:153] oneDNN custom operations are on. You may see ...",
    "I0000 00:00:1796420410.566492   16160 cudart_stub.cc:31] Could not find cuda drivers on your machine, ...",
]
NOISE = ("I0000", "E0000", "absl::", "INFO", "Downloading artifacts", "CloudPickle")


def _run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python <args>` in `project` with this checkout's code, as DVC runs a stage (its own MLflow store)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TF_CPP_", "IMGCLF_VERBOSE"))}
    clean |= {"PYTHONPATH": str(ROOT), "DVC_ROOT": str(project), **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=project, env=clean, capture_output=True, text=True,
                          timeout=600)


def _imported(stderr: str) -> set[str]:
    """Top-level packages in `python -X importtime`'s report (the modules the process imported)."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _printed(stderr: str) -> list[str]:
    """stderr without `-X importtime`'s report."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


def test_abseil_start_up_lines_are_told_from_every_other_line():
    assert all(console.is_startup_line(line) for line in ABSL_LINES)
    kept = ["E0000 00:00:1796420418.166803   16160 cuda_platform.cc:52] failed call to cuInit",
            "W0000 00:00:1796420418.166803   16160 allocator.cc:1] Allocation exceeds 10% of free system memory",
            "UserWarning: Do not pass an `input_shape`", "warning: skipping photos/a.jpg", ""]
    assert not any(console.is_startup_line(line) for line in kept)


@pytest.mark.parametrize(("verbose", "startup_lines"), [("0", False), ("1", True)])
def test_tensorflow_imports_without_its_start_up_lines_unless_verbose(tmp_path, verbose, startup_lines):
    code = ("import sys; from imgclf import console; console.quiet(); console.quiet_import('tensorflow'); "
            "sys.stderr.write('after the import\\n')")
    ran = _run(tmp_path, "-c", code, env={"IMGCLF_VERBOSE": verbose})
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines()[-1] == "after the import"
    assert any(marker in ran.stderr for marker in ("I0000", "absl::")) == startup_lines, ran.stderr


def test_quiet_sets_the_libraries_switches_and_keeps_a_users_own(monkeypatch):
    monkeypatch.delenv(console.VERBOSE, raising=False)
    for name in console.QUIET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    console.quiet()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the user's
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


def test_a_typo_in_params_stops_the_train_stage_before_tensorflow_or_mlflow(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  optimzer: adam\n")
    ran = _run(tmp_path, "-X", "importtime", "-m", "stages.train")
    assert ran.returncode == 2
    (line,) = _printed(ran.stderr)
    assert line.startswith("error: unknown key train.optimzer") and "did you mean train.optimizer?" in line, line
    assert not {"tensorflow", "keras", "mlflow"} & _imported(ran.stderr)


def test_a_non_finite_number_stops_every_stage_on_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  learning_rate: .inf\n")
    ran = _run(tmp_path, "-m", "stages.download")
    assert ran.returncode == 2
    assert ran.stderr.splitlines() == ["error: train.learning_rate = inf is invalid; allowed: a finite number"]
    assert not (tmp_path / "data").exists()


def test_logreg_trains_and_writes_its_model_without_tensorflow_or_start_up_lines(tmp_path, monkeypatch):
    from tests.conftest import write_tiny_split

    monkeypatch.chdir(tmp_path)
    write_tiny_split()
    (tmp_path / "params.yaml").write_text("train:\n  model: logreg\n")
    ran = _run(tmp_path, "-X", "importtime", "-m", "stages.train")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "models/model.keras").is_file() and (tmp_path / "models/onnx/model.onnx").is_file()
    assert not {"tensorflow", "keras"} & _imported(ran.stderr)
    printed = _printed(ran.stderr) + ran.stdout.splitlines()
    assert not [line for line in printed if any(marker in line for marker in NOISE)], printed
    assert all(line.startswith("train: ") for line in ran.stdout.splitlines()), ran.stdout


@pytest.mark.slow
def test_a_missing_photo_folder_fails_dvc_repro_naming_data_path(tmp_path):
    from tests.dvc_project import dvc, make_project

    repo = make_project(tmp_path, {"data.dataset": "image_folder", "data.path": "photo"})
    ran = dvc(repo, "repro", "download", check=False)
    assert ran.returncode != 0
    errors = [line for line in (ran.stdout + ran.stderr).splitlines() if line.startswith("error: ")]
    assert errors == [f"error: data.path = 'photo' is not a folder (looked for {(repo / 'photo').resolve()}); "
                      "point it at a folder of class folders"], ran.stdout + ran.stderr
    assert "Errno 2" not in ran.stdout + ran.stderr
