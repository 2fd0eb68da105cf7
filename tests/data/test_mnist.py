"""Tests for qatlib.data: the shipped full MNIST and its checksums, the tfds checks (no download), the batch stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qatlib import data


import gzip
import shutil

PUBLISHED_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


def test_shipped_mnist_is_full_and_matches_the_published_label_counts():
    mnist = data.load_mnist()
    assert mnist.source == "idx"
    assert mnist.train_images.shape == (60000, 28, 28, 1) and mnist.val_images.shape == (10000, 28, 28, 1)
    assert mnist.train_images.dtype == np.float32 and mnist.train_labels.dtype == np.int32
    assert mnist.train_images.min() == 0.0 and mnist.train_images.max() == 1.0
    assert np.bincount(mnist.train_labels).tolist() == PUBLISHED_COUNTS["train"]
    assert np.bincount(mnist.val_labels).tolist() == PUBLISHED_COUNTS["test"]
    assert "60,000" in mnist.describe() and "10,000" in mnist.describe()


@pytest.fixture
def mnist_copy(tmp_path):
    for name, _, _ in data.MNIST_FILES.values():
        shutil.copy(data.mnist_dir() / name, tmp_path / name)
    return tmp_path


def _rewrite(path, change):
    raw = bytearray(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(bytes(change(raw))))


def test_one_changed_byte_is_refused_naming_the_file(mnist_copy):
    target = mnist_copy / "t10k-labels-idx1-ubyte.gz"

    def flip(raw):
        raw[5000] = (raw[5000] + 1) % 256
        return raw

    _rewrite(target, flip)
    with pytest.raises(data.CorruptDataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt: the MD5"):
        data.load_mnist(data_dir=mnist_copy)


def test_truncated_and_missing_files_are_refused(mnist_copy):
    target = mnist_copy / "train-labels-idx1-ubyte.gz"
    _rewrite(target, lambda raw: raw[:-10])
    with pytest.raises(data.CorruptDataError, match="train-labels-idx1-ubyte.gz is corrupt: 59,998 bytes"):
        data.verify_mnist(mnist_copy)
    target.write_bytes(target.read_bytes()[:100])  # a cut-off gzip stream
    with pytest.raises(data.CorruptDataError, match="does not decompress"):
        data.verify_mnist(mnist_copy)
    target.unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte.gz is missing"):
        data.verify_mnist(mnist_copy)


def test_bad_source_and_absent_tfds_raise_with_instructions(tmp_path):
    with pytest.raises(ValueError, match="source must be one of"):
        data.load_mnist("mnist.org")
    assert data.tfds_prepared_dir(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="download_and_prepare"):
        data.load_mnist("tfds", data_dir=tmp_path)


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


def test_batch_stream_resumes_at_a_step_with_the_same_batches():
    images = np.arange(10, dtype=np.float32).reshape(10, 1)
    labels = np.arange(10, dtype=np.int32)
    whole = [b["label"] for b in itertools.islice(data.batch_stream(images, labels, 3, seed=1), 9)]
    resumed = [b["label"] for b in itertools.islice(data.batch_stream(images, labels, 3, seed=1, start_step=5), 4)]
    for a, b in zip(whole[5:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
