import re

import pytest
import yaml

from imgclf.params import AUTO, PHOTO_AUGMENTATION, Params, ParamsError, flatten, load_params, parse_params
from tests.conftest import PROJECT


def test_project_params_parse_with_the_documented_defaults():
    params = load_params(PROJECT / "params.yaml")
    assert params.data.dataset == "digits"
    assert params.train.hidden_units == (128,)
    assert params.train.optimizer == "adam"
    assert isinstance(params.train.learning_rate, float)


def test_missing_keys_take_defaults_and_values_are_typed():
    params = parse_params({"seed": 7, "train": {"hidden_units": [64, 32], "learning_rate": 1}})
    assert params.seed == 7
    assert params.train.hidden_units == (64, 32)
    assert params.train.learning_rate == 1.0 and isinstance(params.train.learning_rate, float)
    assert params.split == Params().split


def test_batch_size_is_a_number_or_full():
    assert parse_params({"train": {"batch_size": 1}}).train.batch_size == 1
    assert parse_params({"train": {"batch_size": "full"}}).train.batch_size == "full"


def test_augmentation_is_off_unless_a_transform_is_set():
    assert not parse_params({}).train.augmentation.enabled
    assert parse_params({"train": {"augmentation": {"zoom": 0.1}}}).train.augmentation.enabled


def test_exponent_without_dot_is_read_as_a_number():
    # PyYAML (YAML 1.1) loads `1e-3` as a string; `dvc exp run -S train.learning_rate=1e-3` writes that.
    assert parse_params({"train": {"learning_rate": "1e-3"}}).train.learning_rate == 0.001


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"train": {"optimiser": "adam"}}, ["train.optimiser", "optimizer"]),
        ({"colour": 1}, ["colour"]),
        ({"seed": -1}, ["seed", "integer from 0"]),
        ({"train": {"optimizer": "adamm"}}, ["train.optimizer", "sgd, adam, adamw, rmsprop, adagrad"]),
        ({"train": {"epochs": -1}}, ["train.epochs", ">= 1"]),
        ({"train": {"epochs": 2.5}}, ["train.epochs", "integer"]),
        ({"train": {"epochs": True}}, ["train.epochs", "integer"]),
        ({"train": {"batch_size": 0}}, ["train.batch_size"]),
        ({"train": {"learning_rate": -0.1}}, ["train.learning_rate", "> 0"]),
        ({"train": {"learning_rate": "fast"}}, ["train.learning_rate", "a number"]),
        ({"train": {"hidden_units": []}}, ["train.hidden_units"]),
        ({"train": {"hidden_units": [128, -4]}}, ["train.hidden_units", "positive"]),
        ({"train": {"activation": "swish"}}, ["train.activation", "leaky_relu"]),
        ({"split": {"val_fraction": 1.5}}, ["split.val_fraction", "between 0 and 1"]),
        ({"data": {"dataset": "cifar"}}, ["data.dataset", "digits, mnist, fashion_mnist"]),
        ({"data": "mnist"}, ["data", "mapping"]),
        ({"data": {"mirror": 3}}, ["data.mirror", "URL"]),
        ({"train": {"batch_size": "half"}}, ["train.batch_size", "or full"]),
        ({"train": {"dropout": 1.5}}, ["train.dropout", "[0, 1)"]),
        ({"train": {"model": "svm"}}, ["train.model", "mlp", "logreg"]),
        ({"train": {"labels": "dense"}}, ["train.labels", "sparse, one_hot"]),
        ({"train": {"augmentation": {"rotation": 270}}}, ["train.augmentation.rotation", "degrees"]),
        ({"train": {"augmentation": {"flip": "yes"}}}, ["train.augmentation.flip", "true, false or auto"]),
        ({"train": {"augmentation": {"zoom": "automatic"}}}, ["train.augmentation.zoom", "or auto"]),
        ({"train": {"augmentation": {"fill": "mirror"}}}, ["train.augmentation.fill", "constant, reflect, auto"]),
        ({"train": {"cnn": {"dense_units": [64, 0]}}}, ["train.cnn.dense_units", "positive integers, or []"]),
        ({"train": {"model": "cnn", "lr_schedule": "cosine", "callbacks": {"reduce_lr": {"enabled": True}}}},
         ["train.callbacks.reduce_lr.enabled", "train.lr_schedule"]),
        ({"train": {"callbacks": {"early_stopping": {"monitor": "val_f1"}}}},
         ["train.callbacks.early_stopping.monitor", "val_loss"]),
        ({"train": {"callbacks": {"reduce_lr": {"factor": 2}}}}, ["train.callbacks.reduce_lr.factor"]),
        ({"train": {"logreg": {"max_iter": 0}}}, ["train.logreg.max_iter"]),
        ({"train": {"lr_schedule": "cosine", "callbacks": {"reduce_lr": {"enabled": True}}}},
         ["train.callbacks.reduce_lr.enabled", "train.lr_schedule"]),
        ({"evaluate": {"tta": "mirror"}}, ["evaluate.tta", "none, flip"]),
        ({"evaluate": {"tta": True}}, ["evaluate.tta", "none, flip"]),
        ({"evaluate": {"ttta": "flip"}}, ["evaluate.ttta", "did you mean evaluate.tta"]),
    ],
)
def test_invalid_params_fail_naming_the_key_and_what_is_allowed(raw, names):
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    for name in names:
        assert name in str(info.value)


def test_missing_or_broken_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_flatten_gives_dotted_keys_as_dvc_shows_them():
    flat = flatten(parse_params({"train": {"hidden_units": [32, 16]}}))
    assert flat["train.hidden_units"] == [32, 16]
    assert flat["data.mirror"] is None
    assert flat["seed"] == 42


def _dotted(node: dict, prefix: str = "") -> dict:
    """A parsed YAML mapping as dotted keys, as flatten gives Params."""
    out = {}
    for key, value in node.items():
        out.update(_dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_params_yaml_spells_out_every_param_at_its_default():
    """params.yaml is what runs; the dataclass defaults are what a missing key means. They are one set."""
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    defaults = flatten(Params())
    assert sorted(_dotted(raw)) == sorted(defaults)
    assert flatten(parse_params(raw)) == defaults


def _documented() -> dict[str, str]:
    """docs/params.md's table of params: each key and its default as written."""
    text = (PROJECT / "docs" / "params.md").read_text()
    table = text.split("| key | default | meaning |\n| --- | --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines():
        key, default = (cell.strip() for cell in line.strip("|").split(" | ")[:2])
        assert re.fullmatch(r"`[\w.]+`", key), f"one key per row: {line}"
        assert key not in rows, f"documented twice: {key}"
        rows[key.strip("`")] = default
    return rows


def test_docs_document_every_param_and_only_those_with_their_defaults():
    documented, defaults = _documented(), flatten(Params())
    raw = _dotted(yaml.safe_load((PROJECT / "params.yaml").read_text()))
    auto = {".".join(path) for path in AUTO}
    assert sorted(documented) == sorted(defaults)
    for key, written in documented.items():
        if key in auto:  # documented as params.yaml writes it; what it resolves to is tested below
            assert written == "`auto`" and raw[key] == "auto", f"{key}: docs say {written}"
        else:
            assert yaml.safe_load(written.strip("`")) == defaults[key], f"{key}: docs say {written}"


@pytest.mark.parametrize("spelled", ["auto", None])  # None: the key left out
def test_auto_params_take_the_photo_recipe_for_photos_and_a_cnn_and_stay_off_for_the_lessons(spelled):
    def parse(dataset, model, **train):
        if spelled:
            train = {"optimizer": "auto", "learning_rate": "auto", "lr_schedule": "auto",
                     "augmentation": {k: "auto" for k in [*PHOTO_AUGMENTATION, "fill"]},
                     "callbacks": {"early_stopping": {"enabled": "auto"}}} | train
        return parse_params({"data": {"dataset": dataset}, "train": {"model": model, **train}}).train

    photos = parse("image_folder", "cnn")
    assert (photos.augmentation.rotation, photos.augmentation.zoom, photos.augmentation.shift,
            photos.augmentation.flip) == (18.0, 0.1, 0.1, True)
    assert photos.augmentation.fill == "reflect" and parse("mnist", "cnn").augmentation.fill == "constant"
    assert photos.lr_schedule == "cosine" and photos.callbacks.early_stopping.enabled
    assert (photos.optimizer, photos.learning_rate) == ("adamw", 0.003)
    for dataset in ("digits", "mnist", "fashion_mnist"):
        digits = parse(dataset, "cnn")
        assert not digits.augmentation.enabled and digits.lr_schedule == "cosine"
    for model in ("mlp", "transfer", "logreg"):
        other = parse("image_folder", model)
        assert other.augmentation.flip and other.lr_schedule == "constant"
        assert not other.callbacks.early_stopping.enabled
        assert (other.optimizer, other.learning_rate) == ("adam", 0.001)
    # reduce-on-plateau sets the rate itself: auto leaves the schedule constant rather than fail
    assert parse("image_folder", "cnn", callbacks={"reduce_lr": {"enabled": True}}).lr_schedule == "constant"


def test_a_value_given_wins_over_auto_and_the_run_logs_what_auto_resolved_to():
    train = parse_params({"data": {"dataset": "image_folder"},
                          "train": {"model": "cnn", "lr_schedule": "exponential", "augmentation": {"flip": False},
                                    "callbacks": {"early_stopping": {"enabled": False}}}}).train
    assert train.lr_schedule == "exponential" and not train.callbacks.early_stopping.enabled
    assert not train.augmentation.flip and train.augmentation.zoom == 0.1  # the others stay auto
    raw = {"data": {"dataset": "mnist"}, "train": {"augmentation": {"rotation": 10}}}
    flat = flatten(parse_params(raw))
    assert flat["train.augmentation.rotation"] == 10 and flat["train.augmentation.flip"] is False
    assert raw == {"data": {"dataset": "mnist"}, "train": {"augmentation": {"rotation": 10}}}  # not changed


def test_a_misspelt_key_is_named_with_the_key_it_was_meant_to_be():
    misspelt = r"unknown key train\.optimzer in params\.yaml; did you mean train\.optimizer\?"
    with pytest.raises(ParamsError, match=misspelt):
        parse_params({"train": {"optimzer": "adam"}})
    with pytest.raises(ParamsError) as far:
        parse_params({"train": {"zzz": 1}})
    assert "did you mean" not in str(far.value)  # nothing close: no guess


# YAML's .inf and .nan are floats; `inf` and `nan` unquoted are strings to PyYAML, read as numbers like 1e-3
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), "inf", "nan"])
def test_a_number_that_is_not_finite_is_refused(value):
    with pytest.raises(ParamsError, match=r"train\.learning_rate = .* is invalid; allowed: a finite number"):
        parse_params({"train": {"learning_rate": value}})


def test_the_champion_metric_is_one_of_eval_jsons_and_a_near_miss_is_named():
    assert parse_params({}).mlflow.champion_metric == "accuracy"
    assert parse_params({"mlflow": {"champion_metric": "f1_macro"}}).mlflow.champion_metric == "f1_macro"
    with pytest.raises(ParamsError, match=r"mlflow\.champion_metric = 'f1-macro' is not allowed; choose one of: "
                                          r"accuracy, f1_macro, .*; did you mean f1_macro\?"):
        parse_params({"mlflow": {"champion_metric": "f1-macro"}})
    with pytest.raises(ParamsError) as far:
        parse_params({"mlflow": {"champion_metric": "speed"}})
    assert "did you mean" not in str(far.value)


def test_test_time_augmentation_is_off_unless_flip_is_asked():
    assert parse_params({}).evaluate.tta == "none"
    assert parse_params({"evaluate": {"tta": "flip"}}).evaluate.tta == "flip"
    assert load_params(PROJECT / "params.yaml").evaluate.tta == "none"
