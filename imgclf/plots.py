"""Matplotlib figures for train, evaluate and report; built with Figure directly (no pyplot state)."""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

RIGHT, WRONG = "tab:blue", "tab:red"


def confusion_figure(matrix: np.ndarray, class_names: list[str]) -> Figure:
    """Heatmap of the confusion matrix with counts in the cells."""
    n = len(class_names)
    size = max(4.5, 0.55 * n + 2)
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="actual", title="Confusion matrix")
    long_names = max(map(len, class_names)) > 2
    ax.set_xticklabels(class_names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticklabels(class_names)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    return fig


def image_grid_figure(images: np.ndarray, titles: list[str], colors: list[str], ncols: int = 5,
                      title: str | None = None) -> Figure:
    """Images in a grid, each with a colored caption; grayscale or RGB, values in [0, 1]."""
    fig, axes = _image_grid(max(1, math.ceil(len(images) / ncols)), ncols)
    for ax, image, caption, color in zip(axes.flat, images, titles, colors):
        _show(ax, image)
        ax.set_title(caption, color=color, fontsize=9)
    if title:
        fig.suptitle(title)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.tight_layout()
    return fig


def _image_grid(nrows: int, ncols: int) -> tuple[Figure, np.ndarray]:
    """A figure of nrows x ncols empty image cells (2.1 x 2.6 inches each, room for a caption)."""
    fig = Figure(figsize=(2.1 * ncols, 2.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
        # No ticks at all: an axis turned off still lays its ticks out to place each title, work
        # that grows with the grid and draws nothing; the PNG is the same, byte for byte.
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _show(ax, image: np.ndarray) -> None:
    """One image, grayscale (H x W x 1) or RGB, values in [0, 1], its pixels as they are."""
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")


def reliability_figure(bins: list[dict], ece: float) -> Figure:
    """The reliability diagram: each confidence bin's accuracy as a bar over its width against the diagonal
    of a model whose confidence is its accuracy, the gap to the bin's mean confidence hatched red; below,
    how many images each bin holds."""
    fig = Figure(figsize=(5.5, 6.2))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    lower = [b["lower"] for b in bins]
    width = [b["upper"] - b["lower"] for b in bins]
    filled = [b for b in bins if b["count"]]
    top.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], [b["upper"] - b["lower"] for b in filled],
            align="edge", color=RIGHT, edgecolor="white", label="accuracy", gid="accuracy")
    top.bar([b["lower"] for b in filled], [b["confidence"] - b["accuracy"] for b in filled],
            [b["upper"] - b["lower"] for b in filled], bottom=[b["accuracy"] for b in filled], align="edge",
            fill=False, hatch="///", edgecolor=WRONG, linewidth=0.8, label="gap to the mean confidence", gid="gap")
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfectly calibrated")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"Reliability diagram (ECE {ece:.4f})")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(lower, [b["count"] for b in bins], width, align="edge", color="gray", edgecolor="white")
    bottom.set(xlabel="confidence (the top probability)", ylabel="images")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def confused_pairs_figure(pairs: list[tuple[str, str, int]], examples: list[np.ndarray], confidences: list[list[float]],
                          per_pair: int = 2, pairs_per_row: int = 2) -> Figure:
    """The most confused pairs (actual, predicted, count), each with up to `per_pair` of its images ([0, 1],
    grayscale or RGB) and the probability the model gave the wrong class; a slot left empty where a pair has fewer."""
    fig, axes = _image_grid(max(1, math.ceil(len(pairs) / pairs_per_row)), per_pair * pairs_per_row)
    for number, ((actual, predicted, count), images, probabilities) in enumerate(zip(pairs, examples, confidences)):
        for slot, (image, probability) in enumerate(zip(images, probabilities)):
            ax = axes.flat[number * per_pair + slot]
            _show(ax, image)
            caption = f"{actual} → {predicted}: {count}×\n" if slot == 0 else "\n"
            ax.set_title(f"{caption}p = {probability:.2f}", color=WRONG, fontsize=9)
    fig.suptitle("Most confused pairs (true → predicted: count)")
    if not pairs:
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.tight_layout()
    return fig


def augmentation_figure(grid: np.ndarray) -> Figure:
    """One row per training image: the original, then its augmented versions."""
    n, versions = grid.shape[:2]
    titles = ["original" if v == 0 else "augmented" for _ in range(n) for v in range(versions)]
    title = "Training samples as the network sees them" if versions > 1 else "Training samples (augmentation off)"
    images = grid.reshape(-1, *grid.shape[2:])
    return image_grid_figure(images, titles, ["black"] * len(titles), ncols=versions if versions > 1 else n,
                             title=title)


def learning_curves_figure(rows: list[dict]) -> Figure:
    """Loss and accuracy per epoch, training against validation; the learning rate when it changed."""
    with_lr = "learning_rate" in rows[0] and len({row["learning_rate"] for row in rows}) > 1
    fig = Figure(figsize=(15 if with_lr else 10, 3.8))
    axes = fig.subplots(1, 3 if with_lr else 2)
    epochs = [row["epoch"] for row in rows]
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [row[metric] for row in rows], label="train", marker=".")
        ax.plot(epochs, [row[f"val_{metric}"] for row in rows], label="validation", marker=".")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    if with_lr:
        axes[2].plot(epochs, [row["learning_rate"] for row in rows], marker=".", color="tab:green")
        axes[2].set(xlabel="epoch", ylabel="learning rate", title="Learning rate", yscale="log")
        axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def lr_range_figure(rows: list[dict], suggestion: float, diverged_at: float | None) -> Figure:
    """The learning-rate range test: loss against rate on a log axis, raw and smoothed, with the suggested
    rate and the rate where the loss diverged marked."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    rates = [row["learning_rate"] for row in rows]
    smoothed = [row["smoothed_loss"] for row in rows]
    ax.plot(rates, [row["loss"] for row in rows], color="tab:blue", alpha=0.25, label="loss per batch")
    ax.plot(rates, smoothed, color="tab:blue", label="smoothed loss")
    ax.axvline(suggestion, color="tab:green", linestyle="--", label=f"suggested rate {suggestion:.2g}")
    if diverged_at is not None:
        ax.axvline(diverged_at, color=WRONG, linestyle=":", label=f"diverged at {diverged_at:.2g}")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:  # a diverged batch's loss can be orders of magnitude off: the smoothed curve sets the scale
        low = min(min(finite), *(row["loss"] for row in rows if math.isfinite(row["loss"])))
        high = max(finite)
        ax.set_ylim(low - 0.05 * (high - low + 1e-12), high + 0.05 * (high - low + 1e-12))
    ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss",
           title="Learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def prediction_captions(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> tuple[list[str], list[str]]:
    """'pred (p)' captions, blue when right and red when wrong (with the true class)."""
    titles, colors = [], []
    for label, row in zip(y_true, probs):
        pred = int(row.argmax())
        right = pred == label
        text = f"{class_names[pred]} ({row[pred]:.2f})"
        titles.append(text if right else f"{text}\ntrue: {class_names[label]}")
        colors.append(RIGHT if right else WRONG)
    return titles, colors


def image_strip_png(images: np.ndarray, height: int = 64, gap: int = 4) -> bytes:
    """Images (N x H x W x C uint8, C 1 or 3) side by side on white, each enlarged by a whole factor to at
    least `height` pixels (nearest: the pixels as the model gets them), as PNG bytes (the same bytes for
    the same images: the report is a DVC output)."""
    from PIL import Image

    factor = max(1, -(-height // images.shape[1]))
    tiles = images.repeat(factor, axis=1).repeat(factor, axis=2)
    if tiles.shape[-1] == 1:
        tiles = tiles.repeat(3, axis=-1)
    n, h, w, _ = tiles.shape
    strip = np.full((h, n * w + (n - 1) * gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        strip[:, i * (w + gap):i * (w + gap) + w] = tile
    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# The lesson's colours for a weight: blue positive, orange negative, white at zero.
ORANGE_BLUE = LinearSegmentedColormap.from_list("orange_blue", ["#f59322", "#ffffff", "#0877bd"])


def nodes_figure(images: np.ndarray, titles: list[str], title: str, ncols: int = 8) -> Figure:
    """Weight images (N x H x W) on ORANGE_BLUE, centred on 0 with one symmetric limit for all, so that
    the same colour is the same weight in every tile."""
    limit = float(np.abs(images).max()) if images.size else 1.0
    limit = limit or 1.0
    ncols = max(1, min(ncols, len(images)))
    nrows = max(1, math.ceil(len(images) / ncols))
    fig = Figure(figsize=(1.6 * ncols + 0.8, 1.8 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax in axes.flat:
        ax.axis("off")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, weights, caption in zip(axes.flat, images, titles):
        image = ax.imshow(weights, cmap=ORANGE_BLUE, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    return fig


def gradcam_figure(images: np.ndarray, heatmaps: np.ndarray, captions: list[str], pairs_per_row: int = 2) -> Figure:
    """Each image (values in [0, 1]) beside its Grad-CAM heatmap (in [0, 1]) laid over it, captioned."""
    nrows = max(1, math.ceil(len(images) / pairs_per_row))
    fig = Figure(figsize=(3.8 * pairs_per_row, 2.2 * nrows))
    axes = fig.subplots(nrows, 2 * pairs_per_row, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
        ax.set_xticks([])
        ax.set_yticks([])
    flat = axes.flat
    for image, heatmap, caption in zip(images, heatmaps, captions):
        left, right = next(flat), next(flat)
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        gray = "gray" if pixels.ndim == 2 else None
        left.imshow(pixels, cmap=gray, vmin=0, vmax=1, interpolation="nearest")
        left.set_title(caption, color=WRONG, fontsize=8)
        right.imshow(pixels, cmap=gray, vmin=0, vmax=1, interpolation="nearest")
        right.imshow(heatmap, cmap="jet", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
        right.set_title("where it looked", fontsize=8)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "no validation image was misclassified", ha="left", va="center")
    fig.suptitle("Grad-CAM: the validation split's most confident mistakes")
    fig.tight_layout()
    return fig


def note_figure(text: str) -> Figure:
    """A small figure holding one line: the output of a figure that does not apply to this model."""
    fig = Figure(figsize=(5, 0.6))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=9)
    return fig
