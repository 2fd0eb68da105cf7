"""The experiments' data: full MNIST (shipped, MD5-verified; tfds as an alternative) and the ResNet50 inputs.

* :mod:`qatlib.data.mnist` — the 60,000 / 10,000 MNIST images, batch streams, samples for the
  softmax-regression runs of the Intuition and Theorems chapters;
* :mod:`qatlib.data.imagenet` — ImageNet through tfds, or full MNIST at 32×32×3 as the CPU stand-in.
"""

from qatlib.data import imagenet
from qatlib.data.mnist import (
    MNIST,
    MNIST_FILES,
    PREPARE_HINT,
    SOURCES,
    CorruptDataError,
    batch_stream,
    eval_batches,
    MNIST_SOURCE,
    MNIST_TRAIN_SIZE,
    load_mnist,
    mnist_sample,
    mnist_dir,
    read_idx,
    tfds_data_dir,
    tfds_prepared_dir,
    verify_mnist,
)

__all__ = [
    "SOURCES",
    "MNIST_FILES",
    "PREPARE_HINT",
    "CorruptDataError",
    "MNIST",
    "mnist_dir",
    "read_idx",
    "verify_mnist",
    "load_mnist",
    "tfds_data_dir",
    "tfds_prepared_dir",
    "batch_stream",
    "eval_batches",
    "MNIST_TRAIN_SIZE",
    "MNIST_SOURCE",
    "mnist_sample",
    "imagenet",
]
