import dataclasses
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from imgclf.data.datasets import RemoteFile, get_dataset
from imgclf.data.download import DownloadError, download_files, resolve_sources
from imgclf.data.preprocess import load_raw, prepare_arrays
from tests.conftest import PROJECT, free_ports, write_fake_mnist


def _spec_for(folder, sources=()):
    """The real mnist spec, with checksums of the generated files (as a test supplies them)."""
    mnist = get_dataset("mnist")
    files = tuple(RemoteFile(f.name, hashlib.sha256((folder / f.name).read_bytes()).hexdigest()) for f in mnist.files)
    return dataclasses.replace(mnist, files=files, sources=tuple(sources) or mnist.sources)


def test_mnist_download_from_local_server_end_to_end(http_server, tmp_path):
    www, base = http_server
    arrays = write_fake_mnist(www)
    spec = _spec_for(www, [base])
    raw = tmp_path / "raw"
    raw.mkdir()
    paths = download_files(spec, raw)
    assert sorted(p.name for p in paths) == sorted(arrays)
    data, scale = prepare_arrays(spec, load_raw(spec, raw))
    np.testing.assert_array_equal(data["x_train"], arrays["train-images-idx3-ubyte.gz"][..., None])
    assert scale == 1 / 255
    assert data["x_test"].shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(data["y_test"], arrays["t10k-labels-idx1-ubyte.gz"])


def test_falls_back_to_the_next_source(http_server, tmp_path):
    www, base = http_server
    write_fake_mnist(www)
    spec = _spec_for(www, [base + "missing/", base])
    download_files(spec, tmp_path)
    assert len(list(tmp_path.glob("*.gz"))) == 4


def test_checksum_mismatch_fails_and_keeps_no_file(http_server, tmp_path):
    www, base = http_server
    write_fake_mnist(www)
    good = _spec_for(www, [base])
    bad = dataclasses.replace(good, files=(RemoteFile(good.files[0].name, "0" * 64),))
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(DownloadError) as info:
        download_files(bad, raw)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "checksum mismatch" in message
    assert base in message and "data.mirror" in message
    assert list(raw.iterdir()) == []


def test_unreachable_host_names_the_source_and_the_fix(tmp_path):
    base = f"http://127.0.0.1:{free_ports()[0]}/"
    spec = dataclasses.replace(get_dataset("mnist"), sources=(base,))
    with pytest.raises(DownloadError) as info:
        download_files(spec, tmp_path, timeout=5)
    assert "unreachable" in str(info.value) and base in str(info.value) and "data.mirror" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_reported_with_its_status(http_server, tmp_path):
    _, base = http_server
    spec = dataclasses.replace(get_dataset("fashion_mnist"), sources=(base,))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_files(spec, tmp_path)


def test_mirror_replaces_the_hosts_and_accepts_a_local_folder(tmp_path):
    write_fake_mnist(tmp_path / "mirror")
    spec = _spec_for(tmp_path / "mirror")
    assert resolve_sources(spec, "https://example.org/mnist") == ("https://example.org/mnist/",)
    assert resolve_sources(spec, None) == spec.sources
    (tmp_path / "raw").mkdir()
    download_files(spec, tmp_path / "raw", mirror=str(tmp_path / "mirror"))
    assert len(list((tmp_path / "raw").glob("*.gz"))) == 4
    with pytest.raises(DownloadError, match="neither a URL nor an existing folder"):
        resolve_sources(spec, str(tmp_path / "nowhere"))


def test_download_stage_fails_cleanly_and_leaves_no_raw_folder(http_server, tmp_path):
    # The generated files cannot match MNIST's pinned checksums: the stage must refuse them.
    www, base = http_server
    write_fake_mnist(www)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"dataset": "mnist", "mirror": base}}))
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    result = subprocess.run([sys.executable, "-m", "stages.download"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "error: could not download train-images-idx3-ubyte.gz" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "raw").exists()
    assert list((tmp_path / "data").iterdir()) == []
