"""A missing prerequisite (Chromium, actionlint, ../shared) skips on a user's machine and fails under CI=true."""

import pytest

from tests.conftest import require


def test_missing_prerequisite_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium not found; CI must provide it"):
        require(False, "chromium not found")


def test_missing_prerequisite_skips_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium not found"):
        require(False, "chromium not found")


def test_present_prerequisite_runs_the_test(monkeypatch):
    # a skip would not fail this test by itself: catch it, so that a require that skips anyway fails here
    for ci in ("true", ""):
        monkeypatch.setenv("CI", ci)
        try:
            require(True, "chromium not found")
        except pytest.skip.Exception as skipped:
            pytest.fail(f"require skipped a test whose prerequisite is present (CI={ci!r}): {skipped}")
