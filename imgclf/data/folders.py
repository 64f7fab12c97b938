"""Photo folders: one sub-folder per class, optionally inside train/ validation/ test/ folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import PipelineError

# Folder names of ready-made splits and the split each one feeds.
SPLIT_FOLDERS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
# Files an operating system leaves in photo folders; not dot-files, so named here (compared in lower case).
SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class FolderDataset:
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]  # split ("all" when not pre-split) -> (file, label)

    @property
    def presplit(self) -> bool:
        return "all" not in self.files


def scan_image_folder(root: str | Path) -> FolderDataset:
    """Find classes and files; fail before any work on a layout that cannot be trained on."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise PipelineError(f"data.path = {str(root)!r} is not a folder (looked for {root.resolve()}); "
                            "point it at a folder of class folders")
    subdirs = {d.name: d for d in _visible(root) if d.is_dir()}
    split_dirs = {name: d for name, d in subdirs.items() if name in SPLIT_FOLDERS}
    if split_dirs:
        _check_split_folders(root, split_dirs, sorted(set(subdirs) - set(split_dirs)))
        if "train" not in split_dirs:
            raise PipelineError(
                f"{root} has {', '.join(sorted(split_dirs))}/ but no train/: add train/ beside them, "
                "or give a folder of class folders"
            )
        return _scan_presplit(root, split_dirs)
    classes = _classes(root)
    return FolderDataset(classes, {"all": _files(root, classes)})


def _check_split_folders(root: Path, split_dirs: dict[str, Path], others: list[str]) -> None:
    """A flat tree whose class is named train, val, validation or test is not a split tree: its folder holds images."""
    of_images = sorted(name for name, d in split_dirs.items() if not any(p.is_dir() for p in _visible(d)))
    if not of_images:
        return
    beside = f" beside class folders ({', '.join(others)})" if others else ""
    raise PipelineError(
        f"{root} has {', '.join(f'{name}/' for name in of_images)} holding images, not class folders{beside}: "
        f"the names train, validation, val and test mark ready-made split folders; rename such a class folder "
        f"(e.g. {of_images[0]}_) for a folder of class folders, or move every class folder into train/ "
        "(and validation/, test/)"
    )


def _scan_presplit(root: Path, split_dirs: dict[str, Path]) -> FolderDataset:
    if "val" in split_dirs and "validation" in split_dirs:
        raise PipelineError(f"{root} holds both validation/ and val/; keep one")
    per_split = {SPLIT_FOLDERS[name]: (d, _classes(d)) for name, d in split_dirs.items()}
    classes = per_split["train"][1]
    for folder, names in per_split.values():
        missing, extra = sorted(set(classes) - set(names)), sorted(set(names) - set(classes))
        if missing or extra:
            where = (f"{', '.join(missing)} missing from {folder}" if missing
                     else f"{', '.join(extra)} in {folder} but not in {split_dirs['train']}")
            raise PipelineError(
                f"class folder(s) {where}: train/, validation/ and test/ must hold the same class folders"
            )
    return FolderDataset(classes, {split: _files(folder, classes) for split, (folder, _) in per_split.items()})


def _classes(folder: Path) -> tuple[str, ...]:
    names = tuple(sorted(d.name for d in _visible(folder) if d.is_dir()))
    if len(names) < 2:
        raise PipelineError(
            f"{folder} has {len(names)} class folder(s) ({', '.join(names) or 'none'}); "
            "a classifier needs at least two, one sub-folder of images per class"
        )
    return names


def _files(folder: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    files = []
    for label, name in enumerate(classes):
        found = sorted(f for f in (folder / name).rglob("*") if f.is_file() and not _ignored(f, folder))
        if not found:
            raise PipelineError(f"class folder {folder / name} is empty; add images or remove the folder")
        files += [(f, label) for f in found]
    return files


def _visible(folder: Path):
    return (p for p in folder.iterdir() if not p.name.startswith("."))


def _ignored(path: Path, root: Path) -> bool:
    """Hidden files and folders (.DS_Store, .git) and Windows' Thumbs.db / desktop.ini are not photos."""
    return path.name.lower() in SYSTEM_FILES or any(part.startswith(".") for part in path.relative_to(root).parts)

