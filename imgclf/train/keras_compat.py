"""Keras internals patched so that fit runs under a MultiWorkerMirroredStrategy (keras#20585).

Written against Keras 3.15 with the TensorFlow backend (requirements.txt pins both). It replaces two
functions of keras.src.backend.tensorflow.trainer, both private: a Keras whose internals moved (either
function gone or renamed) fails here with an error that says so, before training starts, instead of
training wrongly. The patches act only under that strategy; every other fit runs Keras's own code.
Remove this module once a Keras release fixes the issue (tests/test_multi_worker.py then passes without it).
"""

from __future__ import annotations

import keras
import tensorflow as tf

WRITTEN_FOR = "3.15"
_PATCHED = "_imgclf_multi_worker_fixed"


def fix_multi_worker_fit() -> None:
    """Two Keras 3 bugs that stop fit on every worker of a MultiWorkerMirroredStrategy.

    - Before the first step fit averages a batch over the workers, to build the model and compile's
      metrics symbolically from its shapes; that fails on a tuple of per-replica tensors
      ("unsupported type (PerReplica) to a Tensor"). This worker's own part of the batch has the
      same shapes, so the build uses it.
    - Each step's logs are scalars, reduced with axis=0 ("Invalid reduction dimension 0 for input
      with 0 dimensions"): a scalar is averaged over the workers with axis=None.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, _PATCHED, False):
        return
    reduce_per_replica = getattr(trainer, "reduce_per_replica", None)
    symbolic_build = getattr(getattr(trainer, "TensorFlowTrainer", None), "_maybe_symbolic_build", None)
    if reduce_per_replica is None or symbolic_build is None:
        raise RuntimeError(
            f"imgclf/train/keras_compat.py was written for Keras {WRITTEN_FOR}; Keras {keras.__version__} has no "
            "trainer.reduce_per_replica or TensorFlowTrainer._maybe_symbolic_build to patch: check whether "
            "keras#20585 is fixed there and remove the patch, or pin Keras to a version it was written for")

    def multi_worker(strategy) -> bool:
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def reduce_fixed(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            def mean(v):
                rank = strategy.experimental_local_results(v)[0].shape.rank
                return strategy.reduce("MEAN", v, axis=0 if rank else None)
            return tree.map_structure(mean, values)
        return reduce_per_replica(values, strategy, reduction)

    def symbolic_build_fixed(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not multi_worker(strategy):
            return symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            local = tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=local)

    trainer.reduce_per_replica = reduce_fixed
    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build_fixed
    setattr(trainer, _PATCHED, True)
