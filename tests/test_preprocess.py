from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.data.datasets import get_dataset, load_bundled_digits
from imgclf.data.preprocess import normalize, prepare_arrays
from imgclf.errors import PipelineError


def test_normalize_keeps_8_bit_pixels_and_returns_the_scale_to_unit_range():
    images = np.array([[[0, 8], [16, 4]]], dtype=np.uint8)
    out, scale = normalize(images, 16.0)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.uint8 and scale == 1 / 16
    np.testing.assert_allclose(out[0, :, :, 0] * scale, [[0, 0.5], [1, 0.25]])


def test_normalize_divides_other_pixel_types_to_float32_with_scale_one():
    images = np.array([[[0, 300], [600, 150]]], dtype=np.int16)
    out, scale = normalize(images, 600.0)
    assert out.dtype == np.float32 and scale == 1.0
    np.testing.assert_allclose(out[0, :, :, 0], [[0, 0.5], [1, 0.25]])


def test_digits_are_bundled_and_prepared_to_unit_range():
    spec = get_dataset("digits")
    raw = load_bundled_digits()
    data, scale = prepare_arrays(spec, {"x_train": raw["images"], "y_train": raw["labels"]})
    assert data["x_train"].shape == (1797, 8, 8, 1) and data["x_train"].dtype == np.uint8
    assert data["x_train"].min() * scale == 0.0 and data["x_train"].max() * scale == 1.0
    assert spec.class_names == tuple(str(d) for d in range(10))
    assert "x_test" not in data


def test_fashion_arrays_keep_their_source_test_split():
    spec = get_dataset("fashion_mnist")
    images = np.zeros((3, 28, 28), np.uint8)
    data, _ = prepare_arrays(spec, {"x_train": images, "y_train": np.array([0, 5, 9]),
                                 "x_test": images, "y_test": np.array([1, 2, 3])})
    assert spec.class_names[0] == "T-shirt/top" and spec.class_names[9] == "Ankle boot"
    assert data["y_test"].dtype == np.int64


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((3, 8, 8)), np.array([0, 1]), "3 images but 2 labels"),
        (np.zeros((2, 8, 8)), np.array([0, 10]), "labels must lie in 0..9"),
        (np.zeros((2, 64)), np.array([0, 1]), "N x H x W"),
    ],
)
def test_inconsistent_raw_arrays_are_rejected(images, labels, message):
    with pytest.raises(PipelineError, match=message):
        prepare_arrays(get_dataset("digits"), {"x_train": images, "y_train": labels})


def test_decode_images_keeps_order_and_returns_bad_files_as_errors(tmp_path):
    from imgclf.data.folders import scan_image_folder
    from imgclf.data.images import BadImageError
    from imgclf.data.preprocess import decode_images
    from tests.conftest import make_photo_tree

    make_photo_tree(tmp_path, presplit=False)
    paths = [path for path, _ in scan_image_folder(tmp_path).files["all"]]  # the files preprocess is given
    for workers in (1, 2):
        results = list(decode_images(paths, (16, 16), 3, workers=workers))
        bad = [p.name for p, r in zip(paths, results) if isinstance(r, BadImageError)]
        assert sorted(bad) == ["corrupt.jpg", "notes.jpg"]
        assert all(r.shape == (16, 16, 3) for r in results if not isinstance(r, BadImageError))
    serial = list(decode_images(paths, (16, 16), 3, workers=1))
    parallel = list(decode_images(paths, (16, 16), 3, workers=2))
    assert all(isinstance(a, BadImageError) or np.array_equal(a, b) for a, b in zip(serial, parallel))


def test_decode_images_bounds_the_batches_in_flight(tmp_path, monkeypatch):
    """The pool is fed as results are taken, not all at once: a slow consumer holds few results."""
    import imgclf.data.preprocess as preprocess

    submitted = []

    class Recording(preprocess.ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(preprocess, "ThreadPoolExecutor", Recording)
    for i in range(400):
        Image.fromarray(np.full((20, 20, 3), i % 256, np.uint8)).save(tmp_path / f"{i:03d}.png")
    paths = sorted(tmp_path.iterdir())
    results = preprocess.decode_images(paths, (8, 8), 3, workers=2, batch=10)
    first = next(results)
    assert len(submitted) == 4  # 2 workers x 2 batches, of 40 jobs
    rest = list(results)
    assert sum(submitted) == 400 and len(rest) == 399
    assert [int(r[0, 0, 0]) for r in [first, *rest]] == [i % 256 for i in range(400)]
    assert first.dtype == np.uint8


def test_the_stage_keeps_each_photo_beside_its_label_when_bad_files_fall_inside_batches(
        tmp_path, monkeypatch, caplog):
    """Batches of 32 are written whole: a bad file at a batch's first or last place, or a batch of
    bad files only, must not shift the rows after it."""
    from imgclf.data.folders import scan_image_folder
    from imgclf.params import DataParams
    from stages.preprocess import _decode_folder

    classes = ("a", "b", "c")
    for i in range(100):  # 3 batches and some; the pixel value says which photo it is
        folder = tmp_path / "photos" / classes[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 10, 3), i, np.uint8)).save(folder / f"{i:03d}.png")
    monkeypatch.chdir(tmp_path)
    files = scan_image_folder("photos").files["all"]  # in the order the stage decodes them, 32 to a batch
    bad = {0, 31, *range(32, 64), 70, 99}
    for position in bad:
        Path(files[position][0]).write_bytes(b"not a photo")
    (tmp_path / "out").mkdir()
    meta = _decode_folder(DataParams(dataset="image_folder", path="photos", image_size=(8, 8)), tmp_path / "out")

    good = [(int(Path(path).stem), label) for position, (path, label) in enumerate(files) if position not in bad]
    x, y = np.load(tmp_path / "out/train_x.npy"), np.load(tmp_path / "out/train_y.npy")
    assert x.shape == (64, 8, 8, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert [int(v) for v in x[:, 0, 0, 0]] == [i for i, _ in good]
    assert y.tolist() == [label for _, label in good]
    assert [s.split(": ")[0] for s in meta["skipped"]] == [str(files[position][0]) for position in sorted(bad)]
    # one warning per skipped photo, through the stage's logger: "warning: skipping <path>: <why>" on stderr
    assert [r.getMessage() for r in caplog.records if r.name == "imgclf.stages.preprocess"] == [
        f"skipping {skipped}" for skipped in meta["skipped"]]


def test_a_class_whose_photos_are_all_unreadable_stops_the_stage_naming_it(tmp_path, monkeypatch):
    from imgclf.params import DataParams
    from stages.preprocess import _decode_folder

    for i, name in enumerate(("a", "b", "c") * 2):
        (tmp_path / "photos" / name).mkdir(parents=True, exist_ok=True)
        photo = tmp_path / "photos" / name / f"{i}.png"
        if name == "c":
            photo.write_bytes(b"not a photo")
        else:
            Image.fromarray(np.full((12, 10, 3), i, np.uint8)).save(photo)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(PipelineError, match="no readable image left in class c of the train split"):
        _decode_folder(DataParams(dataset="image_folder", path="photos", image_size=(8, 8)), tmp_path / "out")
