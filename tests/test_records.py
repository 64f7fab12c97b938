"""The model record (models/model.json): written and read in one place, in a format later stages and old files share."""

import json

import pytest

from imgclf.artifacts import json_writer, write_together
from imgclf.errors import PipelineError
from imgclf.records import ModelRecord, ServingInfo


def _record(**changes) -> ModelRecord:
    values = dict(dataset="image_folder", model="cnn", class_names=("boots", "shoes"), input_shape=(32, 32, 3),
                  input_dtype="uint8", pixel_scale=1 / 255, class_weights={"boots": 0.75, "shoes": 1.5},
                  onnx_sha256="ab" * 32, model_sha256="cd" * 32, registered_model="shop-classifier")
    return ModelRecord(**values | changes)


def test_a_written_record_reads_back_equal_as_the_json_train_wrote_before(tmp_path):
    record = _record()
    write_together({tmp_path / "model.json": record.writer()})
    assert ModelRecord.read(tmp_path / "model.json") == record
    # The dict train built by hand, in its key order: the DVC-tracked file keeps its bytes.
    by_hand = {"dataset": "image_folder", "model": "cnn", "class_names": ["boots", "shoes"],
               "input_shape": [32, 32, 3], "input_dtype": "uint8", "pixel_scale": 1 / 255,
               "class_weights": {"boots": 0.75, "shoes": 1.5}, "onnx_sha256": "ab" * 32,
               "model_sha256": "cd" * 32, "registered_model": "shop-classifier"}
    write_together({tmp_path / "by_hand.json": json_writer(by_hand)})
    assert (tmp_path / "model.json").read_text() == (tmp_path / "by_hand.json").read_text()


def test_a_record_without_onnx_weights_or_registration_keeps_its_nulls(tmp_path):
    record = _record(class_weights=None, onnx_sha256=None, registered_model=None)
    write_together({tmp_path / "model.json": record.writer()})
    text = json.loads((tmp_path / "model.json").read_text())
    assert text["onnx_sha256"] is None and text["registered_model"] is None and text["class_weights"] is None
    assert ModelRecord.read(tmp_path / "model.json") == record


def test_a_record_without_the_optional_keys_reads_them_as_none(tmp_path):
    least = {"dataset": "digits", "model": "mlp", "class_names": ["0", "1"], "input_shape": [8, 8, 1],
             "model_sha256": "ef" * 32}
    (tmp_path / "model.json").write_text(json.dumps(least))
    record = ModelRecord.read(tmp_path / "model.json")
    assert (record.onnx_sha256, record.registered_model, record.class_weights) == (None,) * 3
    assert record.pixel_scale is None and record.input_dtype is None and record.model_sha256 == "ef" * 32
    assert record.class_names == ("0", "1") and record.input_shape == (8, 8, 1)


def test_a_record_holds_nothing_a_rerun_of_train_changes():
    # model.json is a DVC output: no MLflow run, model id, registry version or commit (they are looked up)
    assert set(_record().to_dict()) == {"dataset", "model", "class_names", "input_shape", "input_dtype",
                                        "pixel_scale", "class_weights", "onnx_sha256", "model_sha256",
                                        "registered_model"}


def test_a_record_without_a_required_key_is_a_clear_error(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"dataset": "digits", "model": "mlp", "class_names": ["0"]}))
    with pytest.raises(PipelineError, match=r"model.json has no input_shape, model_sha256.*dvc repro --force train"):
        ModelRecord.read(tmp_path / "model.json")


def test_the_served_model_keeps_the_three_keys_it_always_stored_and_names_its_onnx_copy():
    record = _record()
    assert record.serving.to_dict() == {"class_names": ["boots", "shoes"], "input_shape": [32, 32, 3],
                                        "pixel_scale": 1 / 255, "onnx_sha256": "ab" * 32}
    assert list(record.serving.to_dict()) == ["class_names", "input_shape", "pixel_scale", "onnx_sha256"]
    assert ServingInfo.from_dict(json.loads(json.dumps(record.serving.to_dict()))) == record.serving
    # A served model logged before it named an ONNX copy reads as one Keras scores.
    older = ServingInfo.from_dict({"class_names": ["a"], "input_shape": [8, 8, 1], "pixel_scale": 1.0})
    assert older.onnx_sha256 is None and older.pixel_scale == 1.0
    with pytest.raises(PipelineError, match="has no input_shape"):
        ServingInfo.from_dict({"class_names": ["a"], "pixel_scale": 1.0})
