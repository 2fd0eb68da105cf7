"""Tests for qatlib.report.tables: narrow frames, the paper's numbers as printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qatlib.report import markup, tables
from qatlib.report.paper import paper_tables

PAPER = paper_tables()
ROOT = Path(__file__).resolve().parents[2]
#: The widest a table may be: its index (a named first column) and five more.
MAX_COLUMNS = 6


def _entry(E_bar, agreement, **extra):
    return {"E_bar": E_bar, "agreement": agreement, "E_bar_conv": E_bar / 2, "agreement_conv": agreement,
            "authors_measure": 0.2, "prediction_agreement": 0.99, **extra}


ROOM = {"weights": 1024, "moving_weights": 300, "same_sequence_among_moving": 0.9, "crossings": 500,
        "mean_offset": 1.25, "median_offset": 0.0, "p90_offset": 3.0, "same_step_share": 0.6}
ACC = {"train_acc": 0.97, "train_loss": 0.14, "val_acc": 0.971, "val_loss": 0.15}
OURS = {
    "sgd": {"baseline": _entry(0.004, 0.98, mirror_room=ROOM), "lr_tweak": _entry(0.005, 0.985, mirror_room=ROOM),
            "unadjusted": _entry(0.02, 0.96, mirror_room=ROOM)},
    "adam": {"baseline": _entry(0.02, 0.95, mirror_room=ROOM), "lr_tweak": _entry(0.015, 0.955, mirror_room=ROOM)},
    "accuracy": {o: {"q_net": ACC, "ste_net": {**ACC, "val_acc": 0.9705}} for o in ("sgd", "adam")},
    "provenance": {"preset": "quick", "steps": 10, "config": {"batch_size": 8}, "device": {"backend": "cpu"},
                   "seconds": 60, "versions": {"jax": "0.4"}, "git_commit": "abc", "created_utc": "2026"},
}


def _frames():
    return {
        "table4_error": tables.table4_error_frame(OURS, PAPER["table4"]["mnist"]),
        "table4_agreement": tables.table4_agreement_frame(OURS, PAPER["table4"]["mnist"]),
        "table5": tables.table5_frame(OURS["accuracy"]),
        "paper_table5_mnist": tables.paper_table5_frame(PAPER["table5"]["mnist"]),
        "paper_table5_resnet": tables.paper_table5_frame(PAPER["table5"]["imagenet_resnet50"]),
        "mirror_room": tables.mirror_room_frame(OURS),
        "claims": tables.claims_frame({"quick (this page)": OURS}),
        "provenance": tables.provenance_frame(OURS),
    }


@pytest.mark.parametrize("name", list(_frames()))
def test_every_table_fits_the_column_and_renders_as_a_numbered_table(name):
    frame = _frames()[name]
    assert frame.shape[1] + 1 <= MAX_COLUMNS, f"{name}: {frame.shape[1] + 1} columns"
    text = markup.table(frame, "A caption.", "tab-test").data
    assert text.startswith(":::{table} A caption.") and "100.0000" not in text


def test_table4_quotes_the_paper_as_printed():
    error = tables.table4_error_frame(OURS, PAPER["table4"]["mnist"])
    assert error["$\\bar E$, paper"].tolist() == ["0.515%", "0.572%", "2.52%", "2.81%", "1.74%"]
    assert error.loc["baseline (S)", "$\\bar E$, ours"] == "0.400%"
    agreement = tables.table4_agreement_frame(OURS, PAPER["table4"]["mnist"])
    assert agreement["agreement, paper"].tolist() == ["98.31%", "98.66%", "96.53%", "94.42%", "95.4%"]


def test_a_column_the_run_did_not_record_is_left_out():
    resnet = {o: {e: {k: v for k, v in entry.items() if k != "authors_measure"} for e, entry in OURS[o].items()}
              for o in ("sgd", "adam")}
    frame = tables.table4_error_frame(resnet, PAPER["table4"]["imagenet_resnet50"])
    assert "authors' measure, ours" not in frame.columns and frame.loc["baseline (S)", "$\\bar E$, paper"] == "5.42%"


def _printed_diff_rows():
    """The Diff rows of the paper's Table 5, read from the paper's text (left half MNIST, right ResNet50)."""
    text = (ROOT.parent / "shared" / "paper" / "paper.txt")
    if not text.is_file():
        pytest.skip("the paper's text is not in this checkout")
    rows = [line.split("\t") for line in text.read_text().splitlines() if line.startswith("Diff\t")]
    assert len(rows) == 2
    return {"mnist": [r[1:5] for r in rows], "imagenet_resnet50": [r[6:10] for r in rows]}


@pytest.mark.parametrize("model", ["mnist", "imagenet_resnet50"])
def test_table5_shows_the_papers_printed_diff_rows_verbatim(model):
    frame = tables.paper_table5_frame(PAPER["table5"][model])
    printed = {
        "mnist": {"sgd": ["-0.06%", "0.0044", "0.06%", "0.0051"], "adam": ["0.07%", "-0.0016", "-0.08%", "-0.0013"]},
        "imagenet_resnet50": {"sgd": ["0.43%", "0.0005", "-1.06%", "-0.0…"],
                              "adam": ["-0.77%", "0.0277", "-0.65%", "0.02…"]},
    }[model]
    assert frame.loc["Diff (S)"].tolist() == printed["sgd"]
    assert frame.loc["Diff (A)"].tolist() == printed["adam"]
    if model == "imagenet_resnet50":
        assert frame.loc["STE (S)"].tolist() == ["68.94%", "1.3370", "69.83%", "1.22…"]


def test_the_stored_diff_rows_are_the_papers_text():
    rows = _printed_diff_rows()
    for model, (sgd, adam) in rows.items():
        stored = PAPER["table5"][model]
        for optimizer, printed in (("sgd", sgd), ("adam", adam)):
            values = [stored[optimizer]["diff_printed"][c] for c in ("train_acc", "train_loss", "val_acc", "val_loss")]
            assert values == [p.strip() for p in printed], (model, optimizer)


def test_our_table5_has_diff_rows_of_q_hat_minus_ste():
    frame = tables.table5_frame(OURS["accuracy"])
    assert list(frame.index) == ["STE (S)", "$\\hat Q$ (S)", "Diff (S)", "STE (A)", "$\\hat Q$ (A)", "Diff (A)"]
    assert frame.loc["Diff (S)", "val acc"] == "0.05%"


def test_a_difference_that_rounds_to_zero_has_no_sign():
    accuracy = {"sgd": {"q_net": ACC, "ste_net": {**ACC, "train_loss": 0.14000001, "val_acc": 0.97100001}}}
    assert tables.table5_frame(accuracy).loc["Diff (S)"].tolist() == ["0.00%", "0.0000", "0.00%", "0.0000"]
    assert tables.table5_frame(accuracy).loc["STE (S)", "train loss"] == "0.1400"


def test_mirror_room_and_claims_frames():
    room = tables.mirror_room_frame(OURS)
    assert room.loc["baseline (S)"].tolist() == ["300", "90.0%", "1.2", "3", "60.0%"]
    claims = tables.claims_frame({"run": OURS})
    assert claims.loc["run", "A (SGD)"] == "holds (0.80)" and claims.loc["run", "B (SGD)"] == "holds (5.00)"


def test_paper_tables_json_is_valid_and_notes_the_cut_off_column():
    data = json.loads((ROOT / "src" / "qatlib" / "report" / "paper_tables.json").read_text())
    assert data["table5"]["imagenet_resnet50"]["truncated"] == ["val_loss"]
