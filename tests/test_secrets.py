"""No committed config file holds a secret: credentials live in .dvc/config.local, the environment or CI's secrets."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT
from tests.dvc_project import dvc, run

CONFIG_SUFFIXES = {".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".json", ".env"}
CONFIG_PATHS = {".dvc/config", ".env"}

# A key names a secret when one of its words does (AWS_SECRET_ACCESS_KEY, sas_token, accountKey) ...
_SECRET_WORDS = {"password", "passwd", "pwd", "passphrase", "secret", "token", "credential", "credentials",
                 "apikey", "accesskey", "privatekey"}
_SECRET_PAIRS = {("access", "key"), ("api", "key"), ("private", "key"), ("account", "key"), ("connection", "string")}
# ... unless it names where a secret is or how to get one (bearer_token_command, secret_name), not the secret.
_POINTER_WORDS = {"path", "file", "command", "cmd", "url", "uri", "name"}
# Values that are no secret: CI's secrets or the job's own token by reference, a switch, a permission level.
_REFERENCE = re.compile(r"^\$\{\{\s*(secrets\.\w+|github\.token)\s*\}\}$")
_SHELL_VARIABLE = re.compile(r"^\$(\w+|\{\w+\})$")  # a step's `export NAME="$OTHER"`
_PLAIN = {"", "true", "false", "yes", "no", "on", "off", "none", "null", "read", "write", "inherit"}
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@", re.I)
_ASSIGNMENT = re.compile(r"\b([A-Za-z_]\w*)=(\$\{\{[^}]*\}\}|\"[^\"]*\"|'[^']*'|\S+)")


def _names_a_secret(key: str) -> bool:
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", key)]
    if not words or words[-1] in _POINTER_WORDS:
        return False
    return bool(_SECRET_WORDS & set(words)) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def _is_literal(value: str) -> bool:
    """A value typed into the file, as opposed to a reference to a secret kept elsewhere."""
    value = value.strip().strip("\"'").strip()
    if value.startswith("${{"):
        return not _REFERENCE.match(value)
    return not _SHELL_VARIABLE.match(value) and value.lower() not in _PLAIN


def _leaks(key: str, value: object) -> Iterator[str]:
    """What in one key's value is a secret in plain text: the key's own value, a URL's password, `NAME=value`."""
    text = "" if value is None else str(value)
    if _names_a_secret(key) and _is_literal(text):
        yield key
    if any(_is_literal(password) for password in _URL_PASSWORD.findall(text)):
        yield f"{key} (a password in a URL)"
    for name, assigned in _ASSIGNMENT.findall(text):
        if _names_a_secret(name) and _is_literal(assigned):
            yield f"{key} ({name}=...)"


def _items(node: object, key: str = "") -> Iterator[tuple[str, object]]:
    """(key, value) for every scalar in nested mappings and lists; a list's items carry the list's key."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _items(child, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from _items(child, key)
    else:
        yield key, node


def _lines(text: str) -> Iterator[tuple[str, object]]:
    """`key = value` lines of an INI file, DVC's config (configobj) or a dotenv file."""
    for line in text.splitlines():
        match = re.match(r"\s*(?:export\s+)?([^=#;\[\s][^=]*?)\s*=\s*(.*?)\s*$", line)
        if match:
            yield match.group(1), match.group(2)


def secrets_in(path: Path) -> list[str]:
    """The keys of config file `path` that hold a secret in plain text (never the secret itself: it would be logged)."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        items = (item for document in yaml.safe_load_all(text) for item in _items(document))
    elif path.suffix == ".toml":
        items = _items(tomllib.loads(text))
    elif path.suffix == ".json":
        items = _items(json.loads(text))
    else:
        items = _lines(text)
    return [leak for key, value in items for leak in _leaks(key, value)]


def committed_config_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, text=True, check=True)
    return sorted(name for name in listed.stdout.split("\0")
                  if name in CONFIG_PATHS or Path(name).suffix in CONFIG_SUFFIXES or Path(name).name == ".env")


def test_no_committed_config_file_holds_a_secret():
    files = committed_config_files()
    assert {".dvc/config", "params.yaml", "dvc.yaml", ".github/workflows/pipeline.yml", "pyproject.toml"} <= set(files)
    leaks = [f"{name}: {leak}" for name in files if (PROJECT / name).is_file() for leak in secrets_in(PROJECT / name)]
    assert not leaks, ("a secret in a committed file; move it to .dvc/config.local (dvc remote modify --local), "
                       "the environment, or the repository's CI secrets (docs/scale-out.md, docs/ci.md): "
                       + "; ".join(leaks))


def test_git_never_takes_dvc_local_config():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=PROJECT)
    assert ignored.returncode == 0, ".dvc/config.local is not git-ignored: .dvc/.gitignore must name /config.local"
    assert ".dvc/config.local" not in subprocess.run(["git", "ls-files", ".dvc"], cwd=PROJECT, capture_output=True,
                                                     text=True, check=True).stdout.split()


LEAKS = [  # (file name, its text, the keys the check names)
    (".dvc/config", "['remote \"storage\"']\n    url = ssh://me@host/srv/dvc\n    password = hunter2\n", ["password"]),
    ("config.ini", "[auth]\nask_password = true\npassword = $ecret-1\n", ["password"]),
    (".dvc/config", "['remote \"storage\"']\n    url = s3://bucket/path\n    access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                    "    secret_access_key = 'wJalrXUtnFEMI/K7MDENG'\n", ["access_key_id", "secret_access_key"]),
    ("azure.cfg", "[remote]\naccount_name = team\nconnection_string = DefaultEndpointsProtocol=https;AccountKey=abc\n",
     ["connection_string"]),
    ("params.yaml", "mlflow:\n  experiment: digits\n  tracking_token: dapi0123\n", ["tracking_token"]),
    ("pipeline.yml", "jobs:\n  repro:\n    steps:\n      - run: dvc repro\n        env:\n"
                     "          MLFLOW_TRACKING_PASSWORD: hunter2\n          API_KEY: ${{ vars.API_KEY }}\n",
     ["MLFLOW_TRACKING_PASSWORD", "API_KEY"]),
    ("shell.yml", "steps:\n  - run: |\n      export AWS_SECRET_ACCESS_KEY=wJalr\n      dvc pull\n",
     ["run (AWS_SECRET_ACCESS_KEY=...)"]),
    ("url.yml", "env:\n  MLFLOW_TRACKING_URI: http://admin:hunter2@mlflow.internal:5000\n",
     ["MLFLOW_TRACKING_URI (a password in a URL)"]),
    ("pyproject.toml", "[tool.publish]\napiKey = \"pypi-AgEI\"\n", ["apiKey"]),
    ("service-account.json", '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}',
     ["private_key"]),
    (".env", "export MLFLOW_TRACKING_USERNAME=ci\nMLFLOW_TRACKING_PASSWORD='hunter2'\n", ["MLFLOW_TRACKING_PASSWORD"]),
]
CLEAN = {
    ".dvc/config": "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://bucket/path\n"
                   "    profile = team\n    credentialpath = ~/.aws/credentials\n    ask_password = true\n",
    "pipeline.yml": "permissions:\n  contents: read\n  id-token: write\njobs:\n  repro:\n    steps:\n"
                    "      - uses: actions/checkout@v4\n        with:\n          token: ${{ github.token }}\n"
                    "      - run: |\n          export AWS_SECRET_ACCESS_KEY=\"$AWS_KEY\"\n          dvc pull\n"
                    "        env:\n          MLFLOW_TRACKING_PASSWORD: ${{ secrets.MLFLOW_TRACKING_PASSWORD }}\n"
                    "          MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}\n"
                    "          AWS_ACCESS_KEY_ID: ${{secrets.AWS_ACCESS_KEY_ID}}\n",
    "params.yaml": "train:\n  tokenizer: words\n  max_tokens: 512\nmlflow:\n  secret_name: MLFLOW_TRACKING_PASSWORD\n",
    "dvc.yaml": "stages:\n  serve:\n    cmd: python -m stages.serve --url ssh://me@host/srv\n",
}


@pytest.mark.parametrize(("name", "text", "expected"), LEAKS, ids=[f"{n}:{e[0]}" for n, _, e in LEAKS])
def test_the_check_flags_each_kind_of_plain_text_secret(tmp_path, name, text, expected):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert secrets_in(path) == expected


@pytest.mark.parametrize("name", CLEAN)
def test_the_check_passes_references_to_secrets_and_keys_that_hold_none(tmp_path, name):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CLEAN[name])
    assert secrets_in(path) == []


def test_dvc_remote_modify_local_keeps_the_documented_keys_out_of_git(tmp_path):
    """The recipe of docs/scale-out.md, run: the remote in the committed config, its keys in config.local only."""
    offline = {"DVC_NO_ANALYTICS": "1"}
    run(tmp_path, "git", "init", "-q")
    dvc(tmp_path, "init", "-q", extra_env=offline)
    dvc(tmp_path, "remote", "add", "-d", "storage", "s3://my-bucket/imgclf", extra_env=offline)
    for option, value in (("access_key_id", "AKIAIOSFODNN7EXAMPLE"), ("secret_access_key", "wJalrXUtnFEMI/K7MDENG")):
        dvc(tmp_path, "remote", "modify", "--local", "storage", option, value, extra_env=offline)
    run(tmp_path, "git", "add", "-A")
    assert run(tmp_path, "git", "ls-files", ".dvc").stdout.split() == [".dvc/.gitignore", ".dvc/config"]
    assert secrets_in(tmp_path / ".dvc" / "config") == []
    assert secrets_in(tmp_path / ".dvc" / "config.local") == ["access_key_id", "secret_access_key"]
