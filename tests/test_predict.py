import json

import keras
import numpy as np
import pytest
from PIL import Image

from imgclf.data.images import load_image
from imgclf.errors import PipelineError
from imgclf.records import ModelRecord, ServingInfo
from imgclf.runtime import setup_logging
from imgclf.serve.photos import predict_files, top_classes
from imgclf.serve.predict import main
from imgclf.train.model import normalization


def test_top_classes_are_ranked():
    ranked = top_classes(np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], 2)
    assert [name for name, _ in ranked] == ["b", "c"]
    assert ranked[0][1] == pytest.approx(0.6)


def test_load_image_converts_mode_and_size(tmp_path):
    rgba = np.zeros((30, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    gray = load_image(tmp_path / "red.png", (8, 8), channels=1)
    assert gray.shape == (8, 8, 1) and gray.dtype == np.uint8
    assert gray.mean() == pytest.approx(76, abs=1)  # ITU-R 601 luma of red
    rgb = load_image(tmp_path / "red.png", (5, 7), channels=3)
    assert rgb.shape == (5, 7, 3) and rgb[..., 0].min() == 255


def test_unreadable_image_is_a_clear_error(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(PipelineError, match="cannot read .*notes.png"):
        load_image(tmp_path / "notes.png", (8, 8), 1)


def _tiny_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), normalization(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(3, "softmax")])
    model.save(tmp_path / "model.keras")
    record = ModelRecord(dataset="image_folder", model="mlp", class_names=("cat", "dog", "eel"), input_shape=(4, 4, 1),
                         input_dtype="uint8", pixel_scale=1 / 255, model_sha256="0" * 64)
    (tmp_path / "model.json").write_text(json.dumps(record.to_dict()))
    return model, record


def _keras(model):
    return lambda x: model.predict(x, verbose=0)


def test_predict_prepares_files_as_training_did(tmp_path):
    model, record = _tiny_model(tmp_path)
    pixels = np.random.default_rng(2).integers(0, 256, (4, 4), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "x.png")
    answers = predict_files(_keras(model), record.serving, [str(tmp_path / "x.png")], k=3)
    direct = model.predict(pixels[None, ..., None], verbose=0)[0]
    ranked = answers[str(tmp_path / "x.png")]
    assert [name for name, _ in ranked] == [record.class_names[i] for i in np.argsort(-direct)]
    assert [p for _, p in ranked] == pytest.approx(sorted(direct, reverse=True), abs=1e-6)


def test_cli_prints_and_writes_json(tmp_path, capsys):
    _tiny_model(tmp_path)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "a.png")
    main([str(tmp_path / "a.png"), "--model", str(tmp_path / "model.keras"), "--top", "2",
          "--json", str(tmp_path / "out.json")])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'a.png'}: ") and line.count("(") == 2
    answers = json.loads((tmp_path / "out.json").read_text())
    assert len(answers[str(tmp_path / "a.png")]) == 2


def test_cli_without_a_trained_model_says_to_run_the_pipeline(tmp_path):
    with pytest.raises(PipelineError, match="dvc repro"):
        main(["x.png", "--model", str(tmp_path / "model.keras")])


def test_a_model_of_the_old_unit_range_contract_is_refused(tmp_path):
    """Before 8-bit pixels at rest, models took [0, 1] floats: fed 0..255 they would answer wrongly."""
    model, record = _tiny_model(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "x.png")
    old = {k: v for k, v in record.to_dict().items() if k not in ("input_dtype", "pixel_scale")}
    (tmp_path / "model.json").write_text(json.dumps(old))
    with pytest.raises(PipelineError, match="no pixel_scale.*retrain"):
        predict_files(_keras(model), ModelRecord.read(tmp_path / "model.json").serving, [str(tmp_path / "x.png")], k=1)


def test_a_model_of_other_stored_pixels_gets_the_file_on_its_own_scale(tmp_path):
    """Digits are stored 0..16 (scale 1/16); a 0..255 image file is brought to that scale first."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), normalization(1 / 16), keras.layers.Flatten(),
                              keras.layers.Dense(3, "softmax")])
    serving = ServingInfo(class_names=("a", "b", "c"), input_shape=(4, 4, 1), pixel_scale=1 / 16)
    pixels = np.random.default_rng(4).integers(0, 256, (4, 4), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "x.png")
    (ranked,) = predict_files(_keras(model), serving, [str(tmp_path / "x.png")], k=3).values()
    # the 0..16 pixels the model takes, the same [0, 1] image inside it
    unit = model.predict((pixels.astype(np.float32) * 16 / 255)[None, ..., None], verbose=0)[0]
    assert [p for _, p in ranked] == pytest.approx(sorted(unit, reverse=True), abs=1e-6)


def _mirror_sensitive_model(tmp_path, dataset="image_folder"):
    """A model of 2x2 photos whose answer a mirror image changes: a bright left column reads `left` first and
    `even` second; mirrored, it reads `even` first and `right` second, so the mean of the two puts `even` first."""
    model = keras.Sequential([keras.Input((2, 2, 1)), normalization(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(3, "softmax")])
    # Flatten's order: (row 0, col 0), (row 0, col 1), (row 1, col 0), (row 1, col 1)
    kernel = np.array([[4, 0, 3.5], [0, 3, 3.5], [4, 0, 3.5], [0, 3, 3.5]], np.float32)
    model.layers[-1].set_weights([kernel, np.zeros(3, np.float32)])
    model.save(tmp_path / "model.keras")
    record = ModelRecord(dataset=dataset, model="mlp", class_names=("left", "right", "even"), input_shape=(2, 2, 1),
                         input_dtype="uint8", pixel_scale=1 / 255, model_sha256="0" * 64)
    (tmp_path / "model.json").write_text(json.dumps(record.to_dict()))
    pixels = np.array([[255, 0], [255, 0]], np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "left.png")
    plain = model.predict(pixels[None, ..., None], verbose=0)[0]
    mirrored = model.predict(pixels[None, :, ::-1, None], verbose=0)[0]
    return plain, mirrored


def _answers(tmp_path, *flags) -> list[tuple[str, float]]:
    main([str(tmp_path / "left.png"), "--model", str(tmp_path / "model.keras"), "--json", str(tmp_path / "out.json"),
          *flags])
    return [(a["class"], a["probability"]) for a in json.loads((tmp_path / "out.json").read_text())[
        str(tmp_path / "left.png")]]


def test_predict_with_flip_tta_ranks_by_the_mean_of_the_photo_and_its_mirror(tmp_path, monkeypatch):
    plain, mirrored = _mirror_sensitive_model(tmp_path)
    monkeypatch.chdir(tmp_path)  # no params.yaml here: tta none unless asked
    without = _answers(tmp_path)
    assert [name for name, _ in without] == ["left", "even", "right"]
    assert [p for _, p in without] == pytest.approx(sorted(plain, reverse=True), abs=1e-6)
    assert _answers(tmp_path, "--tta", "none") == without
    flipped = _answers(tmp_path, "--tta", "flip")
    assert [name for name, _ in flipped] == ["even", "left", "right"]
    mean = (plain + mirrored) / 2
    assert [p for _, p in flipped] == pytest.approx([mean[2], mean[0], mean[1]], abs=1e-6)


def test_predict_takes_tta_from_params_yaml_unless_the_flag_says_otherwise(tmp_path, monkeypatch):
    _mirror_sensitive_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("evaluate:\n  tta: flip\n")
    assert _answers(tmp_path)[0][0] == "even"
    assert _answers(tmp_path, "--tta", "none")[0][0] == "left"
    (tmp_path / "params.yaml").write_text("evaluate:\n  tta: mirror\n")
    with pytest.raises(PipelineError, match="evaluate.tta = 'mirror' is not allowed; choose one of: none, flip"):
        _answers(tmp_path)


def test_predict_warns_in_one_line_when_flip_meets_digits(tmp_path, monkeypatch, capsys):
    _mirror_sensitive_model(tmp_path, dataset="digits")
    monkeypatch.chdir(tmp_path)
    setup_logging()  # as run_stage does: the project's one-line warnings on stderr
    _answers(tmp_path, "--tta", "flip")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "a mirrored digit is another digit" in warnings[0]
    _answers(tmp_path, "--tta", "none")
    assert "another digit" not in capsys.readouterr().err
