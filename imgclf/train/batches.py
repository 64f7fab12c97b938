"""tf.data batches for fit: from memory, or streamed from a memory-mapped .npy larger than RAM."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imgclf.artifacts import SplitPart

# A split up to this size is loaded into memory once (tf.data then serves it from RAM every epoch);
# a larger one streams from its memory-mapped .npy file, a batch of rows at a time.
IN_MEMORY_BYTES = 2 * 1024**3


def make_dataset(data: SplitPart, batch_size: int, n_classes: int, labels: str,
                 shuffle_seed: int | None = None, augment: keras.Sequential | None = None,
                 epoch: tf.Variable | int = 0) -> tf.data.Dataset:
    """Batches for fit; only the training set is shuffled and augmented.

    What is shuffled is row numbers (8 bytes each), not images: the split is held once, in
    memory or on disk, and each batch gathers its rows from it. The order of an epoch is a
    function of (shuffle_seed, epoch) alone: `epoch` is a number, or a variable read when each
    iteration starts (EpochRandomness sets it per epoch), so a resumed training sees the batches an
    uninterrupted one would.
    """
    x, y = data
    n = len(y)
    if shuffle_seed is None:
        ds = tf.data.Dataset.range(n)
    else:
        ds = tf.data.Dataset.range(1).flat_map(lambda _: tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack(
                [tf.constant(shuffle_seed, tf.int64), tf.convert_to_tensor(epoch, tf.int64)]))))
        ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    ds = ds.batch(batch_size)
    if x.nbytes <= IN_MEMORY_BYTES:
        images, target = tf.constant(np.asarray(x)), tf.constant(y)
        ds = ds.map(lambda rows: (tf.gather(images, rows), tf.gather(target, rows)))
    else:
        ds = ds.map(lambda rows: _read_rows(x, y, rows), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda images, target: (augment(images, training=True), target),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if labels == "one_hot":
        ds = ds.map(lambda images, target: (images, tf.one_hot(target, n_classes)))
    # In a multi-worker training each worker takes its share of every batch (the rows come from
    # one array, not from files to divide); a single process ignores this.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Prefetching overlaps preparing the next batch with training on this one.
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _read_rows(x: np.ndarray, y: np.ndarray, rows: tf.Tensor):
    dtype = tf.as_dtype(x.dtype)
    images, target = tf.numpy_function(lambda r: (np.asarray(x[r]), y[r]), [rows], (dtype, tf.int64))
    images.set_shape((None, *x.shape[1:]))
    target.set_shape((None,))
    return images, target
