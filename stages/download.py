"""Stage download: fetch data.dataset into data/raw (verified, all-or-nothing); check a photo folder.

A photo folder stays where it is: this stage checks its layout, so a wrong data.path stops the
pipeline here, named, and writes only where it points (data/raw/source.json). It does not list the
folder's photos: dvc.yaml gives it no dependency on the folder (DVC would fail on a missing folder
with its own bare error before the stage ran), so preprocess, which depends on it, lists them.
"""

from imgclf import layout
from imgclf.artifacts import atomic_dir, remove_staging, write_array, write_json
from imgclf.data.datasets import get_dataset, load_bundled_digits
from imgclf.data.download import download_files
from imgclf.data.folders import scan_image_folder
from imgclf.params import load_params
from imgclf.runtime import run_stage


def main() -> None:
    remove_staging(*layout.OUTPUTS["download"])
    params = load_params(layout.PARAMS)
    name = params.data.dataset
    with atomic_dir(layout.RAW_DIR) as staging:
        if name == "image_folder":
            folder = scan_image_folder(params.data.path)
            write_json(staging / "source.json", {"dataset": name, "path": str(params.data.path)})
            counts = {split: len(files) for split, files in folder.files.items()}
            print(f"download: {len(folder.class_names)} classes in {params.data.path}: {counts}")
            return
        spec = get_dataset(name)
        if spec.bundled:
            for key, array in load_bundled_digits().items():
                write_array(staging / f"{spec.name}_{key}.npy", array)
        else:
            download_files(spec, staging, params.data.mirror)
    print(f"download: {name} -> {layout.RAW_DIR}")


if __name__ == "__main__":
    run_stage(main)
