"""The ImageNet pipeline executed: :class:`qatlib.data.imagenet.TFDSImageNet`'s real JPEG decode,
random-resized crop, flip, centre crop and bicubic resize on ``tfds.testing.mock_data``.

tensorflow-datasets' mock writes random JPEG-encoded examples with ``imagenet2012``'s features;
the metadata (the split sizes a prepared copy records) is written to a temporary ``data_dir``, so
the "is it prepared?" check runs too. Needs the optional extra (``pip install -e '.[imagenet]'``:
tensorflow-cpu, tensorflow-datasets); without it every test here skips. CI does not install it
(see the README's "Several processes" section): run ``pytest -m imagenet tests/data/test_imagenet_mock.py``.

Mocked splits all yield the same ``MOCK_EXAMPLES`` examples, whatever slice is asked for: read
shards differ by their shuffle and augmentation seeds, which is what the tests below compare.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import qatlib
from qatlib.data import imagenet

pytestmark = [
    pytest.mark.imagenet,
    pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is None, reason="needs the optional extra qatlib[imagenet]"),
]

MOCK_EXAMPLES = 24
IMAGE_SIZE = 64  # the pipeline's resize target; 224 in the paper preset, smaller here for speed
SRC = Path(qatlib.__file__).resolve().parents[1]

METADATA = """
import os, sys
import tensorflow_datasets as tfds
builder = tfds.builder("imagenet2012", data_dir=sys.argv[1])
splits = [tfds.core.SplitInfo(name=name, shard_lengths=[count], num_bytes=0) for name, count in (("train", 1281167), ("validation", 50000))]
builder.info.set_splits(tfds.core.SplitDict(splits))
os.makedirs(builder.data_dir, exist_ok=True)
builder.info.write_to_directory(builder.data_dir)
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A tfds ``data_dir`` holding imagenet2012's metadata as a prepared copy has it (no images)."""
    folder = tmp_path_factory.mktemp("tfds")
    subprocess.run([sys.executable, "-c", METADATA, str(folder)], check=True, timeout=300, capture_output=True)
    return folder


@pytest.fixture
def mock(prepared):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(prepared)):
        yield


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_training_batches_are_decoded_cropped_resized_and_normalised(mock):
    data = imagenet.TFDSImageNet(image_size=IMAGE_SIZE, read_shards=4, shuffle_buffer_size=8)
    assert (data.train_size, data.eval_size) == (1281167, 50000)  # from the prepared copy's metadata
    batches = take(data.train_iterator(8), 3)
    for batch in batches:
        assert batch["image"].shape == (8, IMAGE_SIZE, IMAGE_SIZE, 3) and batch["image"].dtype == np.float32
        assert batch["label"].dtype == np.int32 and np.all((0 <= batch["label"]) & (batch["label"] < 1000))
        assert np.all(np.isfinite(batch["image"]))
    pixels = np.stack([b["image"] for b in batches]) * np.asarray(imagenet.STDDEV_RGB) + np.asarray(imagenet.MEAN_RGB)
    # Un-normalised, the mock's random pixels are back on the 0-255 scale (mean 127.5); bicubic
    # resizing overshoots a little beyond it, as in the Flax example, which does not clip.
    assert 100 < pixels.mean() < 155 and pixels.std() > 30 and -128 < pixels.min() and pixels.max() < 384
    assert not np.array_equal(batches[0]["image"], batches[1]["image"])
    again = take(imagenet.TFDSImageNet(image_size=IMAGE_SIZE, read_shards=4, shuffle_buffer_size=8).train_iterator(8), 3)
    for first, second in zip(batches, again, strict=True):  # deterministic: the same stream twice
        np.testing.assert_array_equal(first["image"], second["image"])
        np.testing.assert_array_equal(first["label"], second["label"])


def test_rows_of_a_batch_read_alone_are_those_of_the_whole_batch_and_resume_skips(mock):
    data = imagenet.TFDSImageNet(image_size=IMAGE_SIZE, read_shards=4, shuffle_buffer_size=8)
    whole = take(data.train_iterator(8), 3)
    halves = [take(data.train_iterator(8, rows=rows), 3) for rows in ((0, 4), (4, 8))]  # two processes' shares
    for step, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([half[step]["image"] for half in halves]), batch["image"])
    resumed = next(data.train_iterator(8, start_step=2))
    np.testing.assert_array_equal(resumed["image"], whole[2]["image"])
    other_seed = next(imagenet.TFDSImageNet(image_size=IMAGE_SIZE, read_shards=4, shuffle_buffer_size=8, seed=1).train_iterator(8))
    assert not np.array_equal(other_seed["image"], whole[0]["image"])
    with pytest.raises(ValueError, match="boundaries of the 4 read shards"):
        next(data.train_iterator(8, rows=(0, 3)))
    with pytest.raises(ValueError, match=r"batch_size must be a positive multiple of read_shards \(4\), got 6"):
        next(data.train_iterator(6))


def test_evaluation_reads_the_split_once_in_order_centre_cropped(mock):
    data = imagenet.TFDSImageNet(image_size=IMAGE_SIZE)
    batches = list(data.eval_iterator(10))
    assert [len(b["label"]) for b in batches] == [10, 10, MOCK_EXAMPLES - 20]
    assert batches[0]["image"].shape == (10, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_array_equal(batches[0]["image"], next(data.eval_iterator(10))["image"])  # no randomness
    train_eval = list(data.train_eval_iterator(10))  # the mock's splits hold the same examples
    np.testing.assert_array_equal(train_eval[0]["image"], batches[0]["image"])


def test_an_unprepared_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet2012 is not prepared in data_dir=.*never downloads"):
        imagenet.TFDSImageNet(data_dir=str(tmp_path)).train_size
    with pytest.raises(ValueError, match="read_shards must be a positive int, got 0"):
        imagenet.TFDSImageNet(read_shards=0)


# One multi-process case: two jax.distributed processes (one CPU device each) read their own rows
# of each batch and assemble the global batch; it must equal the batch one process reads alone.
PROCESS = textwrap.dedent(
    """
    import sys
    import jax, numpy as np, tensorflow_datasets as tfds
    from jax.experimental import multihost_utils
    from qatlib.data import imagenet
    from qatlib.training.parallel import DataParallel, start_processes

    port, index, metadata, out = sys.argv[1:5]
    group = start_processes(f"localhost:{port}", 2, int(index), heartbeat_timeout_seconds=10, initialization_timeout_seconds=120)
    placement = DataParallel.create()
    rows = placement.local_rows(8)
    with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=metadata):
        data = imagenet.TFDSImageNet(image_size=64, read_shards=4, shuffle_buffer_size=8)
        stream = data.train_iterator(8, start_step=1, rows=rows)
        gathered = [multihost_utils.process_allgather(placement.shard_local_batch(next(stream), 8)["image"], tiled=True)
                    for _ in range(2)]
    if group.process_index == 0:
        np.save(out, np.stack(gathered))
    print("rows", rows, flush=True)
    """
)


def test_two_processes_assemble_the_batches_one_process_reads(mock, prepared, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=str(SRC))
    out = tmp_path / "gathered.npy"
    processes = [
        subprocess.Popen([sys.executable, "-c", PROCESS, str(port), str(index), str(prepared), str(out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in range(2)
    ]
    try:
        logs = [process.communicate(timeout=600)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert [process.returncode for process in processes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert "rows (0, 4)" in logs[0] and "rows (4, 8)" in logs[1]  # each process read half of each batch
    data = imagenet.TFDSImageNet(image_size=IMAGE_SIZE, read_shards=4, shuffle_buffer_size=8)
    alone = np.stack([batch["image"] for batch in take(data.train_iterator(8, start_step=1), 2)])
    np.testing.assert_array_equal(np.load(out), alone)
