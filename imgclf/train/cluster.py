"""This process's place in a multi-worker training, read from TF_CONFIG (without importing TensorFlow).

In a cluster every worker runs the train stage's command and trains the one model together; only
the chief tracks the run and writes the stage's outputs, so a shared folder sees one writer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from imgclf.errors import PipelineError


@dataclass(frozen=True)
class Cluster:
    workers: int = 1  # processes that train together (1: no cluster)
    chief: bool = True  # this process tracks the run and writes the outputs

    @classmethod
    def from_env(cls, distribute: str) -> Cluster:
        """The cluster TF_CONFIG describes, when train.distribute trains on it (multi_worker, or auto)."""
        raw = os.environ.get("TF_CONFIG")
        if distribute == "multi_worker" and not raw:
            raise PipelineError("train.distribute = multi_worker needs TF_CONFIG (the cluster and this worker's task) "
                                "in the environment; set it on every worker, or use train.distribute: auto")
        if not raw or distribute not in ("multi_worker", "auto"):
            return cls()
        try:
            config = json.loads(raw)
            cluster, task = config.get("cluster", {}), config.get("task", {})
            workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
            kind, index = task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise PipelineError(f"TF_CONFIG is not a cluster and task ({e}); set it to "
                                '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
                                ) from None
        if kind not in ("chief", "worker") or workers < 1:
            raise PipelineError(f"TF_CONFIG names task type {kind!r} among {workers} worker(s); the train stage "
                                "runs as a chief or worker task")
        # TensorFlow's rule: the chief task if there is one, else worker 0.
        chief = kind == "chief" or ("chief" not in cluster and index == 0)
        return cls(workers=workers, chief=chief)
