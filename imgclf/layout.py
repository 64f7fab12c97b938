"""Where each stage reads and writes, relative to the project root (mirrors dvc.yaml)."""

from pathlib import Path

PARAMS = Path("params.yaml")
RAW_DIR = Path("data/raw")
PROCESSED = Path("data/processed/dataset.npz")
SPLIT_DIR = Path("data/split")
SPLIT_METRICS = Path("metrics/split.json")

MODEL = Path("models/model.keras")
MODEL_INFO = Path("models/model.json")
TRAIN_METRICS = Path("metrics/train.json")
HISTORY = Path("plots/history.csv")
AUGMENTATION_PNG = Path("plots/augmentation.png")

EVAL_METRICS = Path("metrics/eval.json")
CLASS_REPORT = Path("metrics/classification_report.json")
CONFUSION = Path("plots/confusion.json")
CONFUSION_PNG = Path("plots/confusion_matrix.png")
MISTAKES_PNG = Path("plots/mistakes.png")
PREDICTIONS = Path("data/predictions/test.npz")

REPORT_DIR = Path("reports")


def split_file(name: str) -> Path:
    """data/split/<train|val|test>.npz"""
    return SPLIT_DIR / f"{name}.npz"
