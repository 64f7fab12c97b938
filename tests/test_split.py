import numpy as np
import pytest

from imgclf.errors import PipelineError
from imgclf.split import split_stratified, summarize_splits


def _arrays(n_per_class=(40, 20, 60)):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1, 1)
    return {"x_train": x, "y_train": y}


def test_carved_split_is_stratified_disjoint_and_complete():
    splits = split_stratified(_arrays(), val_fraction=0.25, test_fraction=0.2, seed=0)
    sizes = {k: len(y) for k, (_, y) in splits.items()}
    assert sizes == {"train": 72, "val": 24, "test": 24}
    for _, y in splits.values():
        # every split keeps the 2:1:3 class proportions
        assert np.bincount(y, minlength=3).tolist() == [c * len(y) // 120 for c in (40, 20, 60)]
    ids = np.concatenate([x.ravel() for x, _ in splits.values()])
    assert sorted(ids.tolist()) == list(range(120))


def test_same_seed_same_split_other_seed_other_split():
    first = split_stratified(_arrays(), 0.25, 0.2, seed=3)
    again = split_stratified(_arrays(), 0.25, 0.2, seed=3)
    other = split_stratified(_arrays(), 0.25, 0.2, seed=4)
    np.testing.assert_array_equal(first["test"][0], again["test"][0])
    assert not np.array_equal(first["test"][0], other["test"][0])


def test_source_test_split_is_kept_as_given():
    arrays = _arrays()
    arrays["x_test"], arrays["y_test"] = np.ones((5, 1, 1, 1)), np.array([0, 1, 2, 0, 1])
    splits = split_stratified(arrays, 0.25, test_fraction=0.5, seed=0)
    assert len(splits["test"][1]) == 5
    assert len(splits["train"][1]) + len(splits["val"][1]) == 120


def test_summary_counts_each_class():
    splits = split_stratified(_arrays(), 0.25, 0.2, seed=0)
    summary = summarize_splits(splits, ["a", "b", "c"], "carved")
    assert summary["test"] == 24 and summary["test_source"] == "carved"
    assert summary["per_class"]["train"] == {"a": 24, "b": 12, "c": 36}


def test_too_few_samples_for_a_stratified_split_is_a_clear_error():
    with pytest.raises(PipelineError, match="split.test_fraction"):
        split_stratified(_arrays((1, 5, 5)), 0.2, 0.2, seed=0)
