"""Where training runs: TensorFlow's distribution strategy, the device it is on, and its threads per op."""

from __future__ import annotations

import logging
import math

import tensorflow as tf

from imgclf.params import TrainParams
from imgclf.train import keras_compat
from imgclf.train.cluster import Cluster

log = logging.getLogger(__name__)

# A dense network doing at most this many multiply-adds per batch (forward) fits faster with one
# thread per op: splitting ops this small across threads costs more than it saves, and leaves
# every step waiting on the slower thread. The bound sits between the lessons' MLP (784-128-10)
# at batch 128, which gains, and at batch 512, which does not (benchmarks/RESULTS.md).
SMALL_BATCH_WORK = 32_000_000


def op_threads(train: TrainParams, input_shape: tuple[int, ...], n_classes: int, batch_size: int) -> int:
    """Threads per TensorFlow op for train.op_threads; 0 is TensorFlow's choice (every core).

    `auto` gives an MLP whose batch is small work one thread, and any other network TensorFlow's
    choice: one thread would change the order a convolution sums in, hence its weights, and slow it.
    It is opt-in: on some CPUs (an AMD EPYC with 1 MiB of L2) the MLP's matmuls sum in another order
    with one thread than with two, so its weights differ from TensorFlow's choice in the last digits.
    """
    if train.op_threads != "auto":
        return train.op_threads
    if train.model != "mlp":
        return 0
    widths = [math.prod(input_shape), *train.hidden_units, n_classes]
    work = batch_size * sum(a * b for a, b in zip(widths, widths[1:]))
    return 1 if work <= SMALL_BATCH_WORK else 0


def set_op_threads(threads: int) -> int:
    """Threads per op for this process (0 leaves TensorFlow's choice); the count in effect (0: TensorFlow's).

    It takes effect only before TensorFlow's first op. A process that ran one already (a test or a
    notebook calling the stage in-process) keeps its count, with a warning.
    """
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if threads and threads != current:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:  # "cannot be modified after initialization"
            log.warning("train.op_threads = %s not applied: TensorFlow already runs in this process "
                        "with %s threads per op", threads, current or "its own choice of")
    return tf.config.threading.get_intra_op_parallelism_threads()


def make_strategy(mode: str) -> tf.distribute.Strategy:
    """TensorFlow's distribution strategy for train.distribute (auto: what the machine offers)."""
    if Cluster.from_env(mode).workers > 1 or mode == "multi_worker":
        keras_compat.fix_multi_worker_fit()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "mirrored" or (mode == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default: one device


def describe_strategy(strategy: tf.distribute.Strategy) -> dict[str, str]:
    # TensorFlow's class for MultiWorkerMirroredStrategy is named CollectiveAllReduceStrategy.
    name = "MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) \
        else type(strategy).__name__.lstrip("_")
    return {"distribute.strategy": "none" if name.startswith("Default") else name,
            "distribute.replicas": str(strategy.num_replicas_in_sync)}


def describe_device() -> str:
    """The GPU's name when TensorFlow sees one, else CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)
