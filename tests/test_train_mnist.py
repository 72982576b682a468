"""Real MNIST: the book's network reaches >= 0.97 test accuracy in 2 epochs
(SGD lr 0.05, momentum 0.9, batch 64: 0.973-0.976 over seeds 0-2; seed 0 gives 0.9758), and
the book's from-scratch listing (examples/from_scratch.py, GradientTape) reaches the
accuracy TensorFlow reaches on it, 0.82 +- 0.02, with its loss near 0.7 in the last epoch.

Runs by default (about 5 s of training on 2 cores with the packed GEMM). The data comes
from ``pyblasnn.datasets.mnist.load_data()`` with network sources turned off
(``PYBLASNN_OFFLINE=1``): tests never touch the network. CI seeds the cache; without it
the tests are skipped and say how to seed it.
"""
import contextlib
import io
import os
import re
import sys

import numpy as np
import pytest

import pyblasnn as keras
from pyblasnn import layers, optimizers
from pyblasnn.datasets import DatasetUnavailableError, mnist


@pytest.fixture(scope="module")
def data():
    patch = pytest.MonkeyPatch()
    patch.setenv("PYBLASNN_OFFLINE", "1")     # local sources only: never the network
    try:
        (train_images, train_labels), (test_images, test_labels) = mnist.load_data()
    except DatasetUnavailableError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.skip(f"real MNIST is not in the local cache and tests do not download it "
                    f"({first}); seed it: copy mnist.npz to $PYBLASNN_HOME/datasets/")
    finally:
        patch.undo()
    train_images = train_images.reshape((60000, 28 * 28)).astype("float32") / 255
    test_images = test_images.reshape((10000, 28 * 28)).astype("float32") / 255
    return train_images, train_labels, test_images, test_labels


@pytest.mark.slow
def test_book_network_reaches_97_percent(data, tmp_path):
    train_images, train_labels, test_images, test_labels = data
    model = keras.Sequential([layers.Dense(512, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train_images, train_labels, epochs=2, batch_size=64, verbose=0,
                        seed=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    predictions = model.predict(test_images[0:10])
    assert predictions.shape == (10, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    assert test_acc >= 0.97, test_acc
    assert test_loss < 0.12

    path = tmp_path / "mnist_model.npz"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(test_images), model.predict(test_images))
    assert loaded.evaluate(test_images, test_labels, verbose=0) == [test_loss, test_acc]


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.slow
def test_from_scratch_listing_reaches_the_books_accuracy(data, monkeypatch, thread_backoff):
    """The whole listing, run as the file has it (10 epochs of SGD 1e-3 from U(0, 0.1)
    weights, batch 128), from a fixed seed: deterministic (any thread count gives the same
    bits, so the contention back-off is on: about 6 s on 2 cores, busy or not)."""
    del data                                  # only for its skip when MNIST is not cached
    monkeypatch.setenv("PYBLASNN_OFFLINE", "1")
    monkeypatch.syspath_prepend(EXAMPLES)
    from listing import Listing
    keras.random.set_seed(0)
    namespace = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        Listing(os.path.join(EXAMPLES, "from_scratch.py"), namespace, show=False).run_rest()
    text = printed.getvalue()
    losses = [float(v) for v in re.findall(r"^loss at batch \d+: (\S+)$", text, re.M)]
    assert text.count("Epoch ") == 10 and len(losses) == 50, text
    accuracy = float(namespace["matches"].mean())
    assert re.search(rf"^accuracy: {accuracy:.2f}$", text, re.M), text
    assert 0.80 <= accuracy <= 0.84, accuracy
    last_epoch = np.mean(losses[-5:])
    assert 0.5 < last_epoch < 0.9 and last_epoch < losses[0], losses
