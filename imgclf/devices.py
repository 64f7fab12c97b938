"""Where training runs: TensorFlow's distribution strategy and the device it is on."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from imgclf.errors import PipelineError


def make_strategy(mode: str) -> tf.distribute.Strategy:
    """TensorFlow's distribution strategy for train.distribute (auto: what the machine offers)."""
    multi_worker = "TF_CONFIG" in os.environ
    if mode == "multi_worker" and not multi_worker:
        raise PipelineError("train.distribute = multi_worker needs TF_CONFIG (the cluster and this worker's task) "
                            "in the environment; set it on every worker, or use train.distribute: auto")
    if mode == "multi_worker" or (mode == "auto" and multi_worker):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        if sum(len(tasks) for tasks in cluster.values()) > 1:
            # Keras 3.15's fit crashes on every worker ("... unsupported type (PerReplica) to a Tensor"):
            # say so before any work rather than fail each worker with a traceback.
            raise PipelineError(
                "train.distribute = multi_worker (TF_CONFIG names several workers) does not train yet: Keras's fit "
                "fails on the workers' batches; train on one machine (unset TF_CONFIG, or train.distribute: none)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "mirrored" or (mode == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default: one device


def describe_strategy(strategy: tf.distribute.Strategy) -> dict[str, str]:
    name = type(strategy).__name__.lstrip("_")
    return {"distribute.strategy": "none" if name.startswith("Default") else name,
            "distribute.replicas": str(strategy.num_replicas_in_sync)}


def describe_device() -> str:
    """The GPU's name when TensorFlow sees one, else CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)
