"""A .keras archive whose bytes are a function of the model alone, so that a rerun reproduces dvc.lock.

Written against Keras 3.15 (requirements.txt pins it). Keras's `model.save` writes three things
that change from one save of the same model to the next, and has no option for any of them:
- metadata.json's "date_saved", the time of the save;
- the zip entry time of model.weights.h5 (config.json and metadata.json carry the zip format's
  first date, 1980-01-01);
- in config.json, "shared_object_id": the memory address (`id()`) of an object that several
  layers share (their dtype policy), which differs in every process.
So the archive is rewritten: every entry keeps its name, order, compression and content, with one
fixed time and mode; "date_saved" becomes that time; the shared objects are numbered 1, 2, ... in
the order config.json first names them (Keras only matches the numbers with each other on
loading). The weights file Keras writes holds no times (tests/test_keras_archive.py saves at two
faked clock times).
Should a Keras release add another such value, tests/test_keras_archive.py fails.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
SAVED_AT = "1980-01-01@00:00:00"  # "date_saved" in Keras's format ("%Y-%m-%d@%H:%M:%S"), at that time
METADATA = "metadata.json"
CONFIG = "config.json"
SHARED_ID = "shared_object_id"
MODE = 0o644  # of every entry: Keras's depends on how it wrote the entry (a temp file is 0600)


def archive_bytes(model) -> bytes:
    """The model as a .keras archive (Keras's own `model.save`), reproducible byte for byte."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return reproducible(path.read_bytes())


def reproducible(archive: bytes) -> bytes:
    """A .keras archive with its save times replaced by fixed ones; anything else as it was."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == METADATA:
                data = _fixed_date(data)
            elif entry.filename == CONFIG:
                data = _numbered_shared_objects(data)
            info = zipfile.ZipInfo(entry.filename, date_time=ZIP_EPOCH)
            info.compress_type = entry.compress_type
            info.create_system = 3  # unix, whatever the machine: the mode below is a unix mode
            info.external_attr = (MODE | 0o100000) << 16  # a regular file
            target.writestr(info, data)
    return out.getvalue()


def _fixed_date(metadata: bytes) -> bytes:
    values = json.loads(metadata)
    if "date_saved" in values:
        values["date_saved"] = SAVED_AT
    return json.dumps(values).encode()


def _numbered_shared_objects(config: bytes) -> bytes:
    """config.json with each shared object's id (a memory address) replaced by its rank of first mention."""
    numbers: dict[int, int] = {}

    def renumber(node):
        if isinstance(node, dict):
            if SHARED_ID in node:
                node[SHARED_ID] = numbers.setdefault(node[SHARED_ID], len(numbers) + 1)
            for value in node.values():
                renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    values = json.loads(config)
    renumber(values)
    return json.dumps(values).encode()  # as Keras writes it (json.dumps, default separators)
