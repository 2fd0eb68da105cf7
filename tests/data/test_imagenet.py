"""Tests for qatlib.data.imagenet: the full-MNIST stand-in at 32x32x3 (not ImageNet) and the optional tfds ImageNet path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from qatlib.data import imagenet
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


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def up_front(images):
    """The reference: pad + repeat + normalise a whole array of [0, 1] MNIST images at once."""
    return imagenet.normalize_image(imagenet.mnist_to_rgb32(np.rint(np.asarray(images) * 255)))


def test_mnist32_is_full_mnist_train_and_test(mnist):
    data = imagenet.load("mnist32")
    assert (data.train_size, data.eval_size, data.num_classes, data.image_size) == (60000, 10000, 10, 32)
    batches = list(data.eval_iterator(1000))
    assert [len(b["label"]) for b in batches] == [1000] * 10
    labels = np.concatenate([b["label"] for b in batches])
    np.testing.assert_array_equal(labels, mnist.val_labels)  # all 10,000 test images, in file order
    assert batches[3]["image"].shape == (1000, 32, 32, 3) and batches[3]["image"].dtype == np.float32
    np.testing.assert_array_equal(batches[3]["image"], up_front(mnist.val_images[3000:4000]))
    assert batches[0]["label"].dtype == np.int32
    limited = list(data.eval_iterator(300, limit=700))
    assert [len(b["label"]) for b in limited] == [300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in limited]), mnist.val_labels[:700])


def test_training_batches_equal_up_front_padding_and_normalisation(mnist):
    data = imagenet.MNIST32(seed=5)
    batch_size, per_epoch = 128, 60000 // 128
    for step in (0, 7, per_epoch + 2):  # the step's own epoch permutation, from (seed, epoch)
        epoch, within = divmod(step, per_epoch)
        index = np.random.default_rng((5, epoch)).permutation(60000)[within * batch_size : (within + 1) * batch_size]
        batch = data.train_batch(step, batch_size)
        assert batch["image"].shape == (batch_size, 32, 32, 3) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (batch_size,) and batch["label"].dtype == np.int32
        np.testing.assert_array_equal(batch["image"], up_front(mnist.train_images[index]))
        np.testing.assert_array_equal(batch["label"], mnist.train_labels[index])
    train_eval = list(data.train_eval_iterator(400, limit=1000))
    assert [len(b["label"]) for b in train_eval] == [400, 400, 200]
    np.testing.assert_array_equal(train_eval[1]["image"], up_front(mnist.train_images[400:800]))
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in train_eval]), mnist.train_labels[:1000])


def test_training_batches_are_a_pure_function_of_seed_and_step_and_cover_each_epoch(mnist):
    data = imagenet.MNIST32(seed=3, train_size=2000)
    batch_size = 500
    again = imagenet.MNIST32(seed=3, train_size=2000)
    np.testing.assert_array_equal(data.train_batch(5, batch_size)["image"], again.train_batch(5, batch_size)["image"])
    other_seed = imagenet.MNIST32(seed=4, train_size=2000)
    assert not np.array_equal(data.train_batch(0, batch_size)["label"], other_seed.train_batch(0, batch_size)["label"])
    assert data.steps_per_epoch(batch_size) == 4
    labels = np.concatenate([data.train_batch(s, batch_size)["label"] for s in range(4)])  # steps 0..3: one epoch
    np.testing.assert_array_equal(np.sort(labels), np.sort(mnist.train_labels[:2000]))  # each image once, first 2,000
    assert not np.array_equal(data.train_batch(0, batch_size)["label"], data.train_batch(4, batch_size)["label"])
    iterator = data.train_iterator(batch_size, start_step=4)
    np.testing.assert_array_equal(next(iterator)["label"], data.train_batch(4, batch_size)["label"])
    assert len(list(data.train_eval_iterator(500))) == 4  # train_eval covers the train_size images only


def test_bad_arguments_are_rejected():
    data = imagenet.MNIST32()
    with pytest.raises(ValueError, match="step must be >= 0"):
        data.train_batch(-1, 8)
    with pytest.raises(ValueError, match="batch_size"):
        data.train_batch(0, 0)
    with pytest.raises(ValueError, match="exceeds"):
        imagenet.MNIST32(train_size=100).train_batch(0, 101)
    for bad in (0, -5, 60001, 2.5, True, "60000"):
        with pytest.raises(ValueError, match=r"train_size must be .*0 < train_size <= 60000.*got"):
            imagenet.MNIST32(train_size=bad)
    with pytest.raises(TypeError):
        imagenet.MNIST32(split_seed=0)  # the old 5k subset's split is gone
    with pytest.raises(ValueError, match="unknown dataset"):
        imagenet.load("cifar10")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is not None, reason="the extra is installed")
def test_imagenet_without_the_optional_extra_says_how_to_get_it():
    with pytest.raises(ImportError, match=r"qatlib\[imagenet\]"):
        imagenet.load("imagenet2012")
