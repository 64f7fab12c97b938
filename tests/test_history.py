from imgclf.train.history import HISTORY_COLUMNS, history_rows, read_history, rows_to_csv


def test_history_csv_keeps_column_order_and_round_trips(tmp_path):
    keras_history = {"val_accuracy": [0.5, 0.75], "loss": [0.123456789, 0.1], "accuracy": [0.4, 0.8],
                     "learning_rate": [0.001, 0.0005], "val_loss": [0.9, 0.7], "lr_extra": [1.0, 1.0]}
    rows = history_rows(keras_history, first_epoch=2)
    text = rows_to_csv(rows)
    lines = text.splitlines()
    assert lines[0] == ",".join(HISTORY_COLUMNS)  # Keras's key order does not leak into the plot's columns
    assert lines[1] == "3,0.123457,0.4,0.9,0.5,0.001" and text.endswith("0.0005\n")
    (tmp_path / "history.csv").write_text(text)
    back = read_history(tmp_path / "history.csv")
    assert [row["epoch"] for row in back] == [3, 4] and all(type(row["epoch"]) is int for row in back)
    assert back[1] == {"epoch": 4, "loss": 0.1, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.75,
                       "learning_rate": 0.0005}


def test_history_without_validation_has_only_its_columns():
    text = rows_to_csv(history_rows({"loss": [0.5], "accuracy": [0.6]}))
    assert text == "epoch,loss,accuracy\n1,0.5,0.6\n"
