import pytest

from imgclf.data.folders import scan_image_folder
from imgclf.errors import PipelineError
from tests.conftest import PHOTO_COUNTS, make_photo_tree


def test_presplit_tree_uses_its_folders_and_ignores_hidden_and_system_files(tmp_path):
    make_photo_tree(tmp_path, presplit=True)
    dataset = scan_image_folder(tmp_path)
    assert dataset.presplit and dataset.class_names == ("bag", "shirt", "shoes")
    assert set(dataset.files) == {"train", "val", "test"}
    # the rotated photo and the two bad files are listed; .DS_Store, Thumbs.db and desktop.ini are not
    assert (tmp_path / "train/bag/Thumbs.db").exists() and (tmp_path / "train/shirt/desktop.ini").exists()
    assert len(dataset.files["train"]) == sum(PHOTO_COUNTS["train"].values()) + 3
    names = {p.name for p, _ in dataset.files["train"]}
    assert not {".DS_Store", "Thumbs.db", "desktop.ini"} & names
    assert {label for _, label in dataset.files["test"]} == {0, 1, 2}


def test_flat_tree_is_one_pool_to_split(tmp_path):
    make_photo_tree(tmp_path, presplit=False)
    dataset = scan_image_folder(tmp_path)
    assert not dataset.presplit and list(dataset.files) == ["all"]


def test_val_folder_name_is_accepted(tmp_path):
    make_photo_tree(tmp_path, presplit=True)
    (tmp_path / "validation").rename(tmp_path / "val")
    assert set(scan_image_folder(tmp_path).files) == {"train", "val", "test"}


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda root: None, "is not a folder"),
        (lambda root: (root / "only").mkdir(parents=True), "needs at least two"),
        (lambda root: [(root / c).mkdir(parents=True) for c in ("a", "b")], "class folder .*a is empty"),
    ],
)
def test_unusable_folders_fail_before_any_work(tmp_path, breakage, message):
    root = tmp_path / "photos"
    breakage(root)
    with pytest.raises(PipelineError, match=message):
        scan_image_folder(root)


def test_split_folders_without_train_are_an_error(tmp_path):
    make_photo_tree(tmp_path, presplit=True)
    (tmp_path / "train").rename(tmp_path / "training")
    with pytest.raises(PipelineError, match="no train/"):
        scan_image_folder(tmp_path)


def test_only_a_train_folder_is_split_from_it(tmp_path):
    make_photo_tree(tmp_path, presplit=True)
    for name in ("validation", "test"):
        for f in (tmp_path / name).rglob("*"):
            if f.is_file():
                f.unlink()
        for d in sorted((tmp_path / name).rglob("*"), reverse=True):
            d.rmdir()
        (tmp_path / name).rmdir()
    dataset = scan_image_folder(tmp_path)
    assert dataset.presplit and list(dataset.files) == ["train"]


def test_class_missing_from_one_split_is_named(tmp_path):
    make_photo_tree(tmp_path, presplit=True)
    for f in (tmp_path / "test" / "shoes").iterdir():
        f.unlink()
    (tmp_path / "test" / "shoes").rmdir()
    with pytest.raises(PipelineError, match="shoes missing from .*test"):
        scan_image_folder(tmp_path)


@pytest.mark.parametrize("name", ["train", "validation", "val", "test"])
def test_a_class_named_like_a_split_folder_is_a_clear_error(tmp_path, name):
    for label in ("bus", "car", name):
        (tmp_path / label).mkdir()
        (tmp_path / label / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(PipelineError, match=rf"{name}/ holding images, not class folders beside class folders "
                                            r"\(bus, car\): the names train, validation, val and test mark "
                                            r"ready-made split folders; rename"):
        scan_image_folder(tmp_path)


def test_split_folders_holding_images_are_a_clear_error(tmp_path):
    for label in ("train", "test"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(PipelineError, match=r"test/, train/ holding images, not class folders"):
        scan_image_folder(tmp_path)
