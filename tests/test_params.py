import pytest

from imgclf.params import Params, ParamsError, flatten, load_params, parse_params
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


def test_exponent_without_dot_is_read_as_a_number():
    # PyYAML (YAML 1.1) loads `1e-3` as a string; `dvc exp run -S train.learning_rate=1e-3` writes that.
    assert parse_params({"train": {"learning_rate": "1e-3"}}).train.learning_rate == 0.001


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"train": {"optimiser": "adam"}}, ["train.optimiser", "optimizer"]),
        ({"colour": 1}, ["colour"]),
        ({"train": {"optimizer": "adamm"}}, ["train.optimizer", "sgd, adam, rmsprop, adagrad"]),
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
