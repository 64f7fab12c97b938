"""Fetch a dataset's files, each verified against its pinned sha256 before it is kept."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from imgclf.artifacts import atomic_path
from imgclf.data.datasets import DatasetSpec, RemoteFile
from imgclf.errors import PipelineError

_CHUNK = 1 << 20


class DownloadError(PipelineError):
    """A dataset file could not be fetched or failed verification."""


class _ChecksumMismatch(Exception):
    pass


def resolve_sources(spec: DatasetSpec, mirror: str | None) -> tuple[str, ...]:
    """Base URLs to try: the mirror alone when one is set, else the dataset's public hosts."""
    if not mirror:
        return spec.sources
    if "://" in mirror:
        return (mirror.rstrip("/") + "/",)
    folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise DownloadError(
            f"data.mirror = {mirror!r} is neither a URL nor an existing folder; "
            "set it to a base URL (https://host/path/) or a local folder holding the dataset files"
        )
    return (folder.resolve().as_uri() + "/",)


def download_files(spec: DatasetSpec, dest: Path, mirror: str | None = None, timeout: float = 30) -> list[Path]:
    """Download every file of `spec` into `dest`, trying each source in turn."""
    sources = resolve_sources(spec, mirror)
    return [_download_one(remote, sources, dest / remote.name, timeout) for remote in spec.files]


def _download_one(remote: RemoteFile, sources: tuple[str, ...], target: Path, timeout: float) -> Path:
    failures = []
    for base in sources:
        url = base + remote.name
        try:
            fetch_verified(url, target, remote.sha256, timeout)
            return target
        except _ChecksumMismatch as exc:
            failures.append(f"{url}: checksum mismatch ({exc})")
        except urllib.error.HTTPError as exc:
            failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            failures.append(f"{url}: unreachable ({exc.reason})")
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
    raise DownloadError(
        f"could not download {remote.name}; tried:\n  " + "\n  ".join(failures)
        + "\nfix: check the network connection, or set data.mirror in params.yaml to a base URL"
        " or local folder that holds the verified files"
    )


def fetch_verified(url: str, target: Path, sha256: str, timeout: float = 30) -> None:
    """Stream `url` to `target`; keep it only if its sha256 matches (no partial file otherwise)."""
    request = urllib.request.Request(url, headers={"User-Agent": "imgclf-download"})
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise _ChecksumMismatch(f"expected sha256 {sha256}, got {digest.hexdigest()}")

