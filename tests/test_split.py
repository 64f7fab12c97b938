import numpy as np
import pytest

from imgclf.data.split import SplitConstraints, count_classes, describe_source, plan_splits, summarize_splits
from imgclf.errors import PipelineError


def _labels(n_per_class=(40, 20, 60)):
    return np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])


def test_carved_split_is_stratified_disjoint_and_complete():
    y = _labels()
    plan = plan_splits({"train": y}, val_fraction=0.25, test_fraction=0.2, seed=0)
    assert list(plan) == ["train", "val", "test"]
    assert {name: len(rows) for name, (_, rows) in plan.items()} == {"train": 72, "val": 24, "test": 24}
    for part, rows in plan.values():
        assert part == "train"
        # every split keeps the 2:1:3 class proportions
        assert np.bincount(y[rows], minlength=3).tolist() == [c * len(rows) // 120 for c in (40, 20, 60)]
    everything = np.concatenate([rows for _, rows in plan.values()])
    assert sorted(everything.tolist()) == list(range(120))


def test_same_seed_same_split_other_seed_other_split():
    y = _labels()
    first, again, other = (plan_splits({"train": y}, 0.25, 0.2, seed=s)["test"][1] for s in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_source_splits_are_kept_as_given():
    y = _labels()
    plan = plan_splits({"train": y, "test": np.array([0, 1, 2, 0, 1])}, 0.25, test_fraction=0.5, seed=0)
    assert plan["test"][0] == "test" and plan["test"][1].tolist() == [0, 1, 2, 3, 4]
    assert len(plan["train"][1]) + len(plan["val"][1]) == 120
    folders = plan_splits({"train": y, "val": y[:9], "test": y[:6]}, 0.25, 0.2, seed=0)
    assert [folders[s][0] for s in ("train", "val", "test")] == ["train", "val", "test"]
    assert len(folders["train"][1]) == 120


def test_source_is_described():
    assert describe_source(["train"], presplit=False) == "carved"
    assert describe_source(["train", "val"], presplit=True) == "carved"
    assert describe_source(["train", "test"], presplit=False) == "source"
    assert describe_source(["train", "test"], presplit=True) == "folders"
    assert describe_source(["train", "val", "test"], presplit=True) == "folders"


def test_summary_has_sizes_and_no_per_class_figure():
    summary = summarize_splits({"train": np.array([0, 0, 2]), "test": np.array([1])}, "carved", 2)
    # a few DVC metrics whatever the number of classes: `dvc exp show` gets no column per class
    assert summary == {"train": 3, "test": 1, "test_source": "carved", "skipped_images": 2}


def test_counts_each_class_including_absent_ones():
    counts = count_classes({"train": np.array([0, 0, 2]), "test": np.array([1])}, ["a", "b", "c"])
    assert counts == {"train": {"a": 2, "b": 0, "c": 1}, "test": {"a": 0, "b": 1, "c": 0}}


def test_too_few_samples_for_a_stratified_split_is_a_clear_error():
    with pytest.raises(PipelineError, match="split.test_fraction"):
        plan_splits({"train": _labels((1, 5, 5))}, 0.2, 0.2, seed=0)


def test_groups_are_carved_whole_and_pinned_rows_stay_in_train():
    y = _labels((30, 30))
    groups = np.arange(60)
    groups[[1, 2, 3]] = 1  # a group of three copies of class 0
    groups[[31, 32]] = 31  # two copies of class 1
    pinned = np.zeros(60, bool)
    pinned[[40, 41]] = True  # a conflicting label's training copies
    seen = set()
    for seed in range(12):
        plan = plan_splits({"train": y}, 0.25, 0.25, seed, SplitConstraints(train_groups=groups, pinned=pinned))
        where = {row: name for name, (_, rows) in plan.items() for row in rows.tolist()}
        assert sorted(where) == list(range(60))
        assert len({where[r] for r in (1, 2, 3)}) == 1 and where[31] == where[32]
        assert where[40] == where[41] == "train"
        seen.add(where[1])
    assert seen == {"train", "val", "test"}  # a group goes anywhere, but always whole


def test_dropped_rows_leave_the_given_parts():
    y = _labels()
    plan = plan_splits({"train": y, "val": y[:9], "test": y[:6]}, 0.25, 0.2, seed=0,
                       constraints=SplitConstraints(dropped={"test": np.array([1, 4]), "val": np.array([0])}))
    assert plan["test"][1].tolist() == [0, 2, 3, 5] and plan["val"][1].tolist() == list(range(1, 9))
    assert len(plan["train"][1]) == 120
