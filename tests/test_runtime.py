import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STAGE = textwrap.dedent("""
    import atexit, gc, sys
    from pathlib import Path
    from imgclf.errors import PipelineError
    from imgclf.runtime import run_stage

    out = Path(sys.argv[1])
    # Registered before main runs, so it runs last at exit: what the stage's own atexit handlers see.
    atexit.register(lambda: (out / "atexit.txt").write_text(f"frozen={gc.get_freeze_count() > 0}"))

    def main():
        if sys.argv[2] == "fail":
            raise PipelineError("data.path = 'nowhere' does not exist; set it to a folder of class folders")
        with open(out / "output.txt", "w") as f:
            f.write("written")

    run_stage(main)
""")


def _stage(tmp_path, outcome):
    return subprocess.run([sys.executable, "-c", STAGE, str(tmp_path), outcome], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_a_finished_stage_freezes_its_objects_for_exit_and_still_runs_its_exit_handlers(tmp_path):
    done = _stage(tmp_path, "succeed")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "output.txt").read_text() == "written"
    # The objects are frozen out of the exit's garbage collections, and atexit handlers (MLflow's, logging's) run.
    assert (tmp_path / "atexit.txt").read_text() == "frozen=True"


def test_a_failed_stage_exits_2_with_one_line_and_its_objects_are_collected_at_exit(tmp_path):
    failed = _stage(tmp_path, "fail")
    assert failed.returncode == 2
    assert failed.stderr.strip() == ("error: data.path = 'nowhere' does not exist; "
                                     "set it to a folder of class folders")
    assert not (tmp_path / "output.txt").exists()
    assert (tmp_path / "atexit.txt").read_text() == "frozen=False"


REPORTING = textwrap.dedent("""
    import logging, sys, types
    from pathlib import Path
    from imgclf.evaluate import scoring
    from imgclf.runtime import run_stage

    logging.basicConfig(format="root: %(message)s")  # a library's handler on the root logger, as absl adds
    # A stand-in Keras, so that the scorer falls back to it without TensorFlow's import.
    sys.modules["keras"] = types.SimpleNamespace(models=types.SimpleNamespace(load_model=lambda *a, **k: None))

    def main():
        scoring.load_scorer(Path("models/model.keras"), {"onnx_sha256": "0" * 64})
        logging.getLogger("imgclf.tracking.store").info("repaired mlflow.db")
        print("stage: done")

    run_stage(main)
""")


def test_a_library_warning_reaches_a_stages_stderr_as_one_labelled_line(tmp_path):
    ran = subprocess.run([sys.executable, "-c", REPORTING], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines() == [
        "warning: models/onnx/model.onnx is missing; scoring models/model.keras with Keras "
        "(restore both with `dvc checkout`)",
        "note: repaired mlflow.db",
    ]
    assert ran.stdout == "stage: done\n"  # the stage's own lines stay on stdout


PROBE = textwrap.dedent("""
    import gc
    from pathlib import Path
    from imgclf.runtime import run_stage

    imported_with_collector = gc.isenabled()

    def main():
        Path("probe.txt").write_text(f"imports={imported_with_collector} main={gc.isenabled()} "
                                     f"frozen={gc.get_freeze_count() > 0}")

    if __name__ == "__main__":
        run_stage(main)
""")


def _probe_stage(tmp_path) -> Path:
    """A stage module beside a copy of the real stages/__init__.py, in a project of its own."""
    package = tmp_path / "stages"
    package.mkdir()
    (package / "__init__.py").write_text((ROOT / "stages" / "__init__.py").read_text())
    (package / "probe.py").write_text(PROBE)
    (tmp_path / "params.yaml").write_text("seed: 1\n")  # checked before any stage's imports
    return tmp_path


@pytest.mark.parametrize(("switch", "expected"), [
    # Off while the stage's modules load; back on, with what they made frozen out of its walks, for main().
    ("1", "imports=False main=True frozen=True"),
    ("0", "imports=True main=True frozen=False"),  # IMGCLF_GC_TUNING=0: the collector left alone
])
def test_a_stage_imports_without_the_cyclic_collector_unless_switched_off(tmp_path, switch, expected):
    project = _probe_stage(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMGCLF_GC_TUNING": switch}
    ran = subprocess.run([sys.executable, "-m", "stages.probe"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert (project / "probe.txt").read_text() == expected


def test_importing_a_stage_module_keeps_the_collector(tmp_path):
    project = _probe_stage(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    imported = subprocess.run([sys.executable, "-c", "import gc, stages.probe; print(gc.isenabled(), "
                               "stages.probe.imported_with_collector, gc.get_freeze_count())"],
                              cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == ["True", "True", "0"]  # a test importing a stage is left as it was


IMPORTING = textwrap.dedent("""
    import gc, sys
    from imgclf.collector import importing

    if sys.argv[1] == "off":
        gc.disable()
    with importing():
        inside = gc.isenabled()
        made = [[] for _ in range(1000)]  # tracked objects, as an import's classes and functions are
    print(inside, gc.isenabled(), gc.get_freeze_count() >= len(made))
""")


@pytest.mark.parametrize(("collector", "expected"), [
    ("on", ["False", "True", "True"]),  # off inside; on after, with what was made frozen
    ("off", ["False", "False", "False"]),  # left as it was: off, nothing frozen
])
def test_importing_turns_the_collector_off_inside_and_freezes_what_was_imported(collector, expected):
    ran = subprocess.run([sys.executable, "-c", IMPORTING, collector], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == expected


def test_every_stage_script_runs_its_main_through_run_stage():
    # stages/__init__.py turns the collector off for a stage process; only run_stage turns it back on.
    scripts = sorted((ROOT / "stages").glob("*.py"))
    assert len(scripts) > 5
    for script in scripts:
        if script.name == "__init__.py":
            continue
        last = ast.parse(script.read_text()).body[-1]
        assert (isinstance(last, ast.If) and ast.unparse(last.test) == "__name__ == '__main__'"
                and [ast.unparse(node) for node in last.body] == ["run_stage(main)"]), script.name


def test_log_lines_go_to_the_stderr_of_the_moment(capsys):
    """setup_logging may run once per process; a later replacement of sys.stderr still gets the lines."""
    import logging

    from imgclf.runtime import setup_logging

    setup_logging()  # conftest puts the logger back as it was after the test
    capsys.readouterr()  # capsys replaced sys.stderr after the handler may have been made
    logging.getLogger("imgclf.test").warning("the photo folder is empty")
    assert capsys.readouterr().err == "warning: the photo folder is empty\n"
