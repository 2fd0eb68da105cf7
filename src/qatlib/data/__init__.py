"""The experiments' data: full MNIST (shipped, MD5-verified; tfds as an alternative) and the ResNet50 inputs.

* :mod:`qatlib.data.mnist` — the 60,000 / 10,000 MNIST images, batch streams, samples for the
  softmax-regression runs of the Intuition and Theorems chapters;
* :mod:`qatlib.data.imagenet` — ImageNet through tfds, or full MNIST at 32×32×3 as the CPU stand-in.
"""

from qatlib.data import imagenet, mnist
from qatlib.data.mnist import *  # noqa: F403  (the MNIST API is the package's)

__all__ = [*mnist.__all__, "imagenet"]
