"""Training that survives being killed: the state at each epoch's end, kept until the stage completes.

Keras's BackupAndRestore keeps the weights and the epoch, written in place one after the other:
a kill between the two resumes from weights of one epoch with the count of another. It also
leaves out what else decides the result: the history so far and the state of the callbacks that
act per epoch (early stopping, reduce-on-plateau, the best checkpoint). This backup writes all
of it into a new folder per epoch and then switches one pointer file atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from imgclf.artifacts import file_md5, write_json
from imgclf.train.history import epoch_row

# Under the real project root (DVC_ROOT), so a `dvc exp run --temp` copy killed with its folder
# still leaves its backup behind; git-ignored. One folder per key: queued experiments do not meet.
BACKUP_DIR = ".train-backup"
POINTER = "latest.json"

# What each stateful callback needs to carry on as if never stopped (Keras resets it in on_train_begin).
_CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


def run_key(params: dict, data_files: list[Path], code_files: list[Path], code_root: Path) -> str:
    """A digest of everything that determines a training: params, the data's and code's md5s, framework versions.

    Code files are named relative to `code_root`, so a `dvc exp run --temp` copy gets the same key.
    """
    content = {
        "params": params,
        "data": {str(p): file_md5(p) for p in sorted(data_files)},
        "code": {p.relative_to(code_root).as_posix(): file_md5(p) for p in sorted(code_files)},
        "keras": keras.__version__,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


class Backup:
    """The newest completed epoch of one training, in `folder`: weights and optimizer, history, callback states."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = Path(folder), key

    @classmethod
    def of(cls, root: Path, key: str) -> Backup:
        return cls(root / BACKUP_DIR / key[:24], key)

    def load(self) -> dict | None:
        """The saved state ({"epoch": epochs completed, "rows", "mlflow_run_id", ...}), or None."""
        pointer = self.folder / POINTER
        if not pointer.exists():
            return None
        state = json.loads(pointer.read_text(encoding="utf-8"))
        if state.get("key") != self.key or not (self.folder / state["dir"]).is_dir():
            return None
        return state

    def restore_model(self, model: keras.Model, state: dict) -> None:
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.folder / state["dir"] / "model.weights.h5")

    def save(self, epoch: int, model: keras.Model, callbacks: list, rows: list[dict], extra: dict) -> None:
        """State after `epoch` epochs: a new folder, then the pointer to it, then older folders removed."""
        name = f"epoch-{epoch:05d}"
        folder = self.folder / name
        shutil.rmtree(folder, ignore_errors=True)  # a leftover of a kill during an earlier save
        folder.mkdir(parents=True)
        model.save_weights(folder / "model.weights.h5")
        states = {}
        for i, callback in enumerate(callbacks):
            fields = next((f for kind, f in _CALLBACK_STATE.items() if isinstance(callback, kind)), None)
            if fields is None:
                continue
            states[str(i)] = {f: _plain(getattr(callback, f, None)) for f in fields}
            if isinstance(callback, keras.callbacks.EarlyStopping) and callback.best_weights is not None:
                np.savez(folder / f"best_weights_{i}.npz", *callback.best_weights)
            if isinstance(callback, keras.callbacks.ModelCheckpoint) and os.path.exists(callback.filepath):
                shutil.copyfile(callback.filepath, folder / f"checkpoint_{i}.weights.h5")
        write_json(self.folder / POINTER, {"key": self.key, "epoch": epoch, "dir": name, "rows": rows,
                                           "callbacks": states, **extra})
        for old in self.folder.glob("epoch-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def restore_callbacks(self, callbacks: list, state: dict) -> None:
        folder = self.folder / state["dir"]
        for i, values in state["callbacks"].items():
            callback = callbacks[int(i)]
            for field, value in values.items():
                setattr(callback, field, value)
            if (weights := folder / f"best_weights_{i}.npz").exists():
                with np.load(weights) as saved:
                    callback.best_weights = [saved[f"arr_{k}"] for k in range(len(saved.files))]
            if (checkpoint := folder / f"checkpoint_{i}.weights.h5").exists():
                shutil.copyfile(checkpoint, callback.filepath)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()  # the backups folder, once no other training keeps one there
        except OSError:
            pass


class EpochBackup(keras.callbacks.Callback):
    """Saves the training state at each epoch's end; on a resumed training, first restores the callbacks'.

    Goes last in the callback list: after the callbacks whose state it saves and restores (their
    on_train_begin resets it), and after MLflow's logging, so a backed-up epoch is also a logged one.
    """

    def __init__(self, backup: Backup, callbacks: list, rows: list[dict], state: dict | None, extra: dict) -> None:
        super().__init__()
        self.backup, self.callbacks, self.rows = backup, callbacks, list(rows)
        self.state, self.extra = state, extra

    def on_train_begin(self, logs=None):
        if self.state is not None:
            self.backup.restore_callbacks(self.callbacks, self.state)

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append(epoch_row(epoch, logs or {}))
        # A training early stopping ended is complete: a resume must not train on.
        self.backup.save(epoch + 1, self.model, self.callbacks, self.rows,
                         {**self.extra, "stopped": bool(self.model.stop_training)})


def _plain(value):
    """A callback field as JSON: numpy scalars as Python numbers (inf stays inf)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
