"""Where each stage reads and writes, relative to the project root (mirrors dvc.yaml)."""

from pathlib import Path

PARAMS = Path("params.yaml")
RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")
SPLIT_DIR = Path("data/split")
SPLIT_METRICS = Path("metrics/split.json")
CHECKS_DIR = Path("data/checks")  # the dataset doctor's findings: findings.json, and the thumbnails of the first groups
CHECK_METRICS = Path("metrics/checks.json")  # its counts per finding and per split: a DVC metric

MODEL = Path("models/model.keras")
MODEL_INFO = Path("models/model.json")
ONNX_DIR = Path("models/onnx")  # model.onnx when the model exports, and export.json saying so (imgclf.evaluate.scoring)
TRAIN_METRICS = Path("metrics/train.json")
HISTORY = Path("plots/history.csv")
AUGMENTATION_PNG = Path("plots/augmentation.png")
# The learning-rate range test's (python -m imgclf.train.lr_range): a command of the lessons, no stage's output
LR_RANGE_PNG = Path("plots/lr_range.png")
LR_RANGE_CSV = Path("plots/lr_range.csv")
NODES_PNG = Path("plots/nodes.png")  # what each hidden node sees: the first layer's weights as images
GRADCAM_PNG = Path("plots/gradcam.png")  # Grad-CAM over the validation split's most confident mistakes

EVAL_METRICS = Path("metrics/eval.json")
CLASS_REPORT = Path("plots/classification_report.json")  # per class: a plain output, not a DVC metric (too wide)
CONFUSION = Path("plots/confusion.json")
CONFUSION_PNG = Path("plots/confusion_matrix.png")
MISTAKES_PNG = Path("plots/mistakes.png")
CONFUSED_PAIRS = Path("plots/confused_pairs.json")  # the largest off-diagonal cells: a plain output, like CLASS_REPORT
CONFUSED_PNG = Path("plots/confused_pairs.png")
CALIBRATION = Path("plots/calibration.json")  # the reliability diagram's bins, its ECE a DVC metric in EVAL_METRICS
RELIABILITY_PNG = Path("plots/reliability.png")
PREDICTIONS = Path("data/predictions/test_probs.npy")

REPORT_DIR = Path("reports")

# Each stage's outputs (as in dvc.yaml): where a killed run of the stage may have left staging files.
OUTPUTS = {
    "download": (RAW_DIR,),
    "preprocess": (PROCESSED_DIR,),
    "split": (SPLIT_DIR, CHECKS_DIR, SPLIT_METRICS, CHECK_METRICS),
    "train": (MODEL, MODEL_INFO, ONNX_DIR, TRAIN_METRICS, HISTORY, AUGMENTATION_PNG, NODES_PNG, GRADCAM_PNG),
    "evaluate": (EVAL_METRICS, CLASS_REPORT, CONFUSION, CONFUSION_PNG, MISTAKES_PNG, CONFUSED_PAIRS, CONFUSED_PNG,
                 CALIBRATION, RELIABILITY_PNG, PREDICTIONS),
    "report": (REPORT_DIR,),
}


def meta_file(folder: Path) -> Path:
    """The JSON beside a folder of arrays: class names, parts, skipped files."""
    return folder / "meta.json"


def class_counts_file(folder: Path) -> Path:
    """data/split's images per class in each split: apart from meta.json, which train depends on, so that a
    changed test set leaves train's inputs as they were (DVC restores train from its run-cache)."""
    return folder / "class_counts.json"


def part_files(folder: Path, part: str) -> tuple[Path, Path]:
    """A part's images and labels as two .npy files: <part>_x.npy, <part>_y.npy."""
    return folder / f"{part}_x.npy", folder / f"{part}_y.npy"


def hashes_file(folder: Path, part: str) -> Path:
    """A processed part's hashes for the dataset doctor (imgclf.data.doctor), with each image's decoded
    size and, for photos, file name: <part>_hashes.npz."""
    return folder / f"{part}_hashes.npz"


def findings_file(folder: Path) -> Path:
    """The dataset doctor's findings, with file names (data/checks/findings.json)."""
    return folder / "findings.json"


def thumbnails_file(folder: Path) -> Path:
    """The images of the first duplicate groups, in findings.json's order, for the report."""
    return folder / "thumbnails.npy"
