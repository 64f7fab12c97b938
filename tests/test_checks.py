"""The dataset doctor in the pipeline: preprocess hashes the photos as it decodes them, split applies
data.checks' policies (drop, warn, fail) and writes metrics/checks.json and data/checks, evaluate puts the
counts on the training run, and the report shows them. The stages run as the pipeline runs them
(`python -m stages.<name>` in a project folder), without DVC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from imgclf.data import checks
from imgclf.data.doctor import HashedPart, hash_images
from imgclf.params import ChecksParams
from imgclf.plots import image_strip_png
from imgclf.report.render import build_context, render_html, render_markdown
from tests.conftest import PROJECT
from tests.test_doctor import COPIES, _distinct, _encoded
from tests.test_report import LOCAL, _context

CLASSES = ("coat", "dress")
PER_CLASS = {"train": 8, "validation": 3, "test": 3}
# Copies planted in the folders (written in the part and class given, from the train photo named): what
# the checks must find, and what the default policies drop.
PLANTED = {
    "test/coat/leak-exact.jpg": ("exact", "train/coat/photo-0.jpg"),
    "validation/coat/leak-q60.jpg": ("jpeg q60", "train/coat/photo-1.jpg"),
    "test/dress/leak-cropped.jpg": ("cropped 5%", "train/dress/photo-0.jpg"),
    "train/coat/copy-png.png": ("png", "train/coat/photo-2.jpg"),  # a copy within train: reported, kept
    "train/dress/conflict-half.jpg": ("half size", "train/coat/photo-3.jpg"),  # in train under two classes
    "test/dress/conflict-bright.jpg": ("brightened 10%", "train/coat/photo-4.jpg"),  # a leak and a conflict
}
DROPPED = {"test/coat/leak-exact.jpg": "leak", "validation/coat/leak-q60.jpg": "leak",
           "test/dress/leak-cropped.jpg": "leak", "test/dress/conflict-bright.jpg": "conflict"}


def _photo_tree(root: Path, planted: dict[str, tuple[str, str]], presplit: bool = True, seed: int = 7) -> Path:
    """Distinct photos per class (and per part when presplit), then the planted copies."""
    photos = iter(_distinct(200, seed=seed))
    originals = {}
    for part, count in PER_CLASS.items():
        for name in CLASSES:
            folder = root / part / name if presplit else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                path = folder / (f"photo-{i}.jpg" if presplit else f"{part}-{i}.jpg")
                image = next(photos)
                path.write_bytes(_encoded(image))
                originals[path.relative_to(root).as_posix()] = image
    for target, (kind, source) in planted.items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).write_bytes(COPIES[kind](originals[source]))
    return root


def _project(folder: Path, photos: Path) -> Path:
    """The stage scripts and params of this project in `folder`, pointed at `photos`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("stages", "imgclf"):
        shutil.copytree(PROJECT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update(dataset="image_folder", path=str(photos))
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def _stage(folder: Path, name: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=folder, capture_output=True, text=True,
                            timeout=300)
    if check and result.returncode:
        raise AssertionError(f"{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _set_checks(folder: Path, **values) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["data"]["checks"].update(values)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """A project whose photos (with the PLANTED copies) went through download and preprocess."""
    root = tmp_path_factory.mktemp("checks")
    project = _project(root / "project", _photo_tree(root / "photos", PLANTED))
    _stage(project, "download")
    _stage(project, "preprocess")
    return project


@pytest.fixture
def project(decoded, tmp_path):
    """A copy of `decoded`, this test's own."""
    return Path(shutil.copytree(decoded, tmp_path / "project", symlinks=True))


def _read(project: Path, path: str):
    return json.loads((project / path).read_text())


def test_preprocess_saves_each_part_s_hashes_with_file_names_and_sizes(decoded):
    part = HashedPart.load(decoded / "data/processed/test_hashes.npz")
    y = np.load(decoded / "data/processed/test_y.npy")
    x = np.load(decoded / "data/processed/test_x.npy")
    assert len(part.hashes) == len(y) == len(part.names) == len(part.sizes)
    assert "test/coat/leak-exact.jpg" in part.names.tolist()
    assert part.sizes.tolist()[0] == [120, 160]  # the photo's own height and width, not the 64x64 it became
    # the hashes saved are those of the pixels saved: hashed once, in the decoding threads
    np.testing.assert_array_equal(part.hashes.phash, hash_images(x).phash)
    np.testing.assert_array_equal(part.hashes.gray, hash_images(x).gray)


def test_leaks_are_dropped_from_validation_and_test_and_listed(project):
    result = _stage(project, "split")
    counts = _read(project, "metrics/checks.json")
    assert counts["leaked_groups"] == 4 and counts["conflicting_groups"] == 2
    assert counts["exact_duplicates"] == 1 and counts["near_duplicates"] == 5
    assert counts["dropped_images"] == 4 and counts["leaks_left"] == 0
    assert counts["duplicates"] == {"train": 2, "val": 0, "test": 0}  # the png copy and the conflict in train
    found = _read(project, "data/checks/findings.json")
    assert {d["name"]: d["reason"] for d in found["dropped"]} == DROPPED
    # the training copies stay; the given parts lose exactly the dropped copies
    split = _read(project, "metrics/split.json")
    given = 2 * PER_CLASS["test"] + 3
    assert (split["train"], split["val"], split["test"]) == (2 * 8 + 2, 2 * 3 + 1 - 1, given - 3)
    # one summary line, and one line per conflicting group naming both files
    out = result.stdout + result.stderr
    assert len([line for line in out.splitlines() if line.startswith("split: data checks found")]) == 1
    assert "train/coat/photo-3.jpg (coat) = train/dress/conflict-half.jpg (dress)" in out
    assert "train/coat/photo-4.jpg (coat) = test/dress/conflict-bright.jpg (dress)" in out


def test_the_report_lists_the_dropped_files_the_conflicts_and_the_groups(project, tmp_path):
    _stage(project, "split")
    found = _read(project, "data/checks/findings.json")
    thumbnails = np.load(project / "data/checks/thumbnails.npy")
    assert len(thumbnails) == sum(len(g["members"]) for g in found["groups"])
    strips = []
    for number, group in enumerate(found["groups"]):
        strips.append(tmp_path / f"group-{number}.png")
        strips[-1].write_bytes(image_strip_png(thumbnails[[m["thumbnail"] for m in group["members"]]]))
    base = _context(tmp_path)
    context = build_context(base["params"], base["split"], base["train"],
                            base["evaluation"], base["classes"], None, base["mistakes"], base["images"], LOCAL,
                            found, strips, confused=base["confused"], calibration=base["calibration"])
    markdown, html = render_markdown(context, tmp_path), render_html(context)
    for name in DROPPED:
        assert f"`{name}`" in markdown and f"<code>{name}</code>" in html
    assert "train/coat/photo-3.jpg (coat) = train/dress/conflict-half.jpg (dress)" in markdown
    assert markdown.count("](group-") == len(found["groups"]) == html.count('alt="the copies of group')
    assert "Warning" not in markdown  # no leak is left in the splits


def test_leak_warn_keeps_the_copies_and_the_report_warns(project, tmp_path):
    _set_checks(project, leak="warn")
    _stage(project, "split")
    counts = _read(project, "metrics/checks.json")
    # the conflicting copy in test is still kept out (conflict: drop); the three plain leaks stay
    assert counts["dropped_images"] == 1 and counts["leaks_left"] == 3
    base = _context(tmp_path)
    context = build_context(base["params"], base["split"], base["train"], base["evaluation"], base["classes"], None,
                            base["mistakes"], base["images"], LOCAL, _read(project, "data/checks/findings.json"),
                            [tmp_path / "plots" / "curves.png"] * len(_read(project, "data/checks/findings.json")
                                                                         ["groups"]),
                            confused=base["confused"], calibration=base["calibration"])
    assert "**Warning:** 3 group(s) of copies are in two splits" in render_markdown(context, tmp_path)


@pytest.mark.parametrize("policy", ["conflict", "leak"])
def test_a_fail_policy_names_every_group_and_writes_nothing(project, policy):
    _set_checks(project, **{policy: "fail"}, **({"conflict": "warn"} if policy == "leak" else {}))
    result = _stage(project, "split", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"data.checks.{policy} = fail" in result.stderr
    if policy == "conflict":
        assert "\n  train/coat/photo-3.jpg (coat) = train/dress/conflict-half.jpg (dress)\n" in result.stderr
        assert "\n  train/coat/photo-4.jpg (coat) = test/dress/conflict-bright.jpg (dress)\n" in result.stderr
    else:
        assert "\n  train/coat/photo-0.jpg (coat) = test/coat/leak-exact.jpg (coat)\n" in result.stderr
    for output in ("data/split", "data/checks", "metrics/checks.json", "metrics/split.json"):
        assert not (project / output).exists(), output


def test_a_clean_set_reports_zero_of_everything(tmp_path):
    project = _project(tmp_path / "project", _photo_tree(tmp_path / "photos", {}, seed=11))
    _set_checks(project, min_class_count=3)
    for name in ("download", "preprocess", "split"):
        _stage(project, name)
    counts = _read(project, "metrics/checks.json")
    assert {k: v for k, v in counts.items() if not isinstance(v, dict)} == {
        "exact_duplicates": 0, "near_duplicates": 0, "conflicting_groups": 0, "leaked_groups": 0,
        "dropped_images": 0, "leaks_left": 0, "small_images": 0, "gray_images": 0}
    assert counts["duplicates"] == {"train": 0, "val": 0, "test": 0}
    assert counts["imbalance"] == {"train": 1.0, "val": 1.0, "test": 1.0}
    assert counts["classes_under_minimum"] == {"train": 0, "val": 0, "test": 0}
    found = _read(project, "data/checks/findings.json")
    assert found["groups"] == found["dropped"] == found["conflicts"] == [] and found["groups_total"] == 0
    assert np.load(project / "data/checks/thumbnails.npy").shape == (0, 64, 64, 3)


def test_a_carved_split_keeps_each_group_of_copies_in_one_split(tmp_path):
    # a flat folder: every split is carved; groups of three copies each, of several kinds
    planted = {}
    sources = [("exact", "coat/train-0.jpg"), ("jpeg q60", "coat/train-1.jpg"), ("png", "dress/train-0.jpg"),
               ("cropped 5%", "dress/train-1.jpg"), ("half size", "coat/validation-0.jpg"),
               ("brightened 10%", "dress/test-0.jpg")]
    for n, (kind, source) in enumerate(sources):
        planted[f"{source.split('/')[0]}/copy-{n}-a.jpg"] = (kind, source)
        planted[f"{source.split('/')[0]}/copy-{n}-b.png"] = ("png" if kind != "png" else "exact", source)
    project = _project(tmp_path / "project", _photo_tree(tmp_path / "photos", planted, presplit=False))
    for name in ("download", "preprocess"):
        _stage(project, name)
    splits_seen = set()
    for seed in range(4):
        params = yaml.safe_load((project / "params.yaml").read_text())
        params.update(seed=seed)
        params["split"].update(val_fraction=0.3, test_fraction=0.3)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        _stage(project, "split")
        found = _read(project, "data/checks/findings.json")
        assert found["groups_total"] == 6
        for group in found["groups"]:
            assert len(group["members"]) == 3
            assert len({m["split"] for m in group["members"]}) == 1, group
            splits_seen.add(group["members"][0]["split"])
        assert _read(project, "metrics/checks.json")["leaks_left"] == 0
    assert splits_seen - {"train"}  # groups were carved too, whole, not only kept back in train


def test_a_dataset_of_arrays_names_its_images_by_part_and_row():
    images = np.stack([np.asarray(image.resize((28, 28)).convert("L")) for image in _distinct(12, seed=5)])
    images = np.concatenate([images, images[2:3]])  # row 12 is row 2 again
    hashed = {"train": HashedPart(hash_images(images[:10]), np.full((10, 2), 28)),
              "test": HashedPart(hash_images(images[10:]), np.full((3, 2), 28))}
    labels = {"train": np.arange(10) % 2, "test": np.array([0, 1, 0])}
    examined = checks.examine_parts(hashed, labels, {"train": images[:10], "test": images[10:]}, 2, (28, 28),
                                    ChecksParams())
    (group,) = examined.findings.groups
    assert [examined.names[i] for i in group.members] == ["train[2]", "test[2]"]
    treatment = checks.treat(examined, ChecksParams(), ["0", "1"])
    assert treatment.dropped == {12: "leak"}
    assert treatment.constraints.dropped["test"].tolist() == [2]
