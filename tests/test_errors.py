import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_a_failed_stage_exits_2_with_one_line_and_nothing_frozen(tmp_path):
    failed = _stage(tmp_path, "fail")
    assert failed.returncode == 2
    assert failed.stderr.strip() == ("error: data.path = 'nowhere' does not exist; "
                                     "set it to a folder of class folders")
    assert not (tmp_path / "output.txt").exists()
    assert (tmp_path / "atexit.txt").read_text() == "frozen=False"
