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
    from imgclf.errors import PipelineError, run_stage

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


PROBE = textwrap.dedent("""
    import gc
    from pathlib import Path
    from imgclf.errors import run_stage

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
    return tmp_path


def test_a_stage_imports_without_the_cyclic_collector_and_runs_main_with_it(tmp_path):
    project = _probe_stage(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, "-m", "stages.probe"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    # Off while the stage's modules load; back on, with what they made frozen out of its walks, for main().
    assert (project / "probe.txt").read_text() == "imports=False main=True frozen=True"


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
    from imgclf.errors import importing

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


# Reports, as the stage process exits, how many threads NumPy's OpenBLAS runs.
BLAS_THREADS = textwrap.dedent("""
    import atexit, sys

    def report():
        import numpy  # noqa: F401 (imported already in a stage that uses it)
        from threadpoolctl import threadpool_info
        threads = [info["num_threads"] for info in threadpool_info() if info["internal_api"] == "openblas"]
        print("openblas threads:", threads[0] if threads else None, file=sys.stderr)

    atexit.register(report)
""")


def test_only_preprocess_starts_numpys_openblas_with_one_thread(tmp_path):
    """preprocess's decoding threads want both cores; OpenBLAS's own would spin on them at import."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site/sitecustomize.py").write_text(BLAS_THREADS)
    limits = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")  # any of them sets OpenBLAS's count
    env = {key: value for key, value in os.environ.items() if key not in limits}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(ROOT)])

    def threads(*args: str) -> int:
        # No params.yaml here: a stage stops at once, with its error, and its process reports on exit.
        ran = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
        assert "openblas threads:" in ran.stderr, ran.stderr
        count = ran.stderr.split("openblas threads:")[1].split()[0]
        if count == "None":
            pytest.skip("this NumPy is built without OpenBLAS (e.g. Accelerate on macOS)")
        return int(count)

    default = threads("-c", "pass")  # OpenBLAS's own count: one per core
    assert default > 1 or os.cpu_count() == 1  # else the check below could not tell
    assert threads("-m", "stages.preprocess") == 1
    assert threads("-m", "stages.download") == default
