import subprocess
import sys

from tests.conftest import PROJECT


def test_code_is_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(PROJECT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
