"""Sequential: gradients, fit/evaluate/predict, reproducibility, allocation-free steps,
summary, progress output, save/load and bad input."""
import io
import os
import re
import tracemalloc

import numpy as np
import pytest

import pyblasnn
from pyblasnn import layers, losses, models, optimizers
from pyblasnn.progress import Progbar


def blobs(n=600, features=20, classes=4, seed=0, dtype=np.float32):
    """Separable Gaussian blobs: a task a small MLP learns within an epoch or two."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 3
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(dtype), y.astype(np.uint8)


def small_model(hidden=32, classes=4, activation="softmax", dtype="float32", optimizer=None,
                loss="sparse_categorical_crossentropy"):
    model = pyblasnn.Sequential([layers.Dense(hidden, activation="relu", dtype=dtype),
                                 layers.Dense(classes, activation=activation, dtype=dtype)])
    model.compile(optimizer=optimizer or optimizers.SGD(0.1, momentum=0.9), loss=loss,
                  metrics=["accuracy"])
    return model


# -- gradients ------------------------------------------------------------------------------

GRAD_CASES = [
    # (hidden layers, output activation, from_logits): the fused softmax + loss path,
    # logits without softmax, softmax through its own vjp (loss on logits), 3 layers,
    # sigmoid / tanh hidden layers, and dropout (a float = its rate) with the mask fixed
    (["relu"], "softmax", False),
    (["relu"], None, True),
    (["relu"], "softmax", True),
    (["relu", "relu"], "softmax", False),
    ([None], "softmax", False),
    (["sigmoid"], "softmax", False),
    (["tanh"], None, True),
    (["tanh", "sigmoid"], "softmax", True),
    (["relu", 0.4, "tanh"], "softmax", False),
]


def _hidden(spec):
    if isinstance(spec, float):
        return layers.Dropout(spec, seed=7)
    return layers.Dense(6, activation=spec, dtype="float64")


@pytest.mark.parametrize("hidden, out_act, from_logits", GRAD_CASES)
def test_model_gradients_match_central_differences(hidden, out_act, from_logits):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))
    y = rng.integers(0, 3, size=7)
    model = pyblasnn.Sequential([_hidden(spec) for spec in hidden]
                                + [layers.Dense(3, activation=out_act, dtype="float64")])
    # lr=1 and momentum 0: w_new = w - g exposes the gradient through the public API too
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])
    model.build((None, 5), rng=np.random.default_rng(1))
    for layer in model.layers:                  # nonzero biases: exercise their gradient
        if isinstance(layer, layers.Dense):
            layer.bias[...] = rng.standard_normal(layer.bias.shape) * 0.1
    w0 = model.get_weights()
    model.train_on_batch(x, y)
    for layer in model.layers:
        if isinstance(layer, layers.Dropout):   # evaluate with the mask that step drew
            mask = layer.mask.copy()
            assert 0 < np.count_nonzero(mask) < mask.size
            layer.forward = lambda a, out, training=False, mask=mask: np.multiply(a, mask,
                                                                                  out=out)
    grads = [w_old - w_new for w_old, w_new in zip(w0, model.get_weights())]
    for g, buf in zip(grads, model.gradients):
        np.testing.assert_allclose(g, buf, rtol=1e-12, atol=1e-14)
    model.set_weights(w0)

    def loss_at():
        return model.evaluate(x, y, batch_size=7, verbose=0)[0]

    h = 1e-6
    for w, g in zip(model.weights, grads):
        num = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            keep = w[idx]
            w[idx] = keep + h
            up = loss_at()
            w[idx] = keep - h
            down = loss_at()
            w[idx] = keep
            num[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)
    assert any(np.abs(g).max() > 1e-3 for g in grads)


# -- training ---------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["rmsprop", "sgd_momentum"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_learns_separable_blobs(optimizer, dtype):
    x, y = blobs(dtype=np.float64)
    opt = optimizers.RMSprop(0.01) if optimizer == "rmsprop" else optimizers.SGD(0.05, 0.9)
    model = small_model(dtype=dtype, optimizer=opt)
    history = model.fit(x[:500], y[:500], epochs=3, batch_size=32, verbose=0, seed=0)
    assert isinstance(history, models.History)
    assert set(history.history) == {"loss", "accuracy"}
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, acc = model.evaluate(x[500:], y[500:], verbose=0)
    assert acc >= 0.95
    assert model.weights[0].dtype == np.dtype(dtype)


def test_evaluate_and_predict_agree_with_numpy():
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=50, verbose=0, seed=1)
    probs = model.predict(x, batch_size=64)
    assert probs.shape == (600, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    w1, b1, w2, b2 = [w.astype(np.float64) for w in model.weights]
    z = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, p, rtol=1e-4, atol=1e-6)
    loss, acc = model.evaluate(x, y, batch_size=77, verbose=0)
    assert loss == pytest.approx(-np.log(p[np.arange(600), y]).mean(), rel=1e-4)
    assert acc == pytest.approx(np.mean(p.argmax(axis=1) == y))
    np.testing.assert_array_equal(model.predict(x[:10]), model(x[:10]))


def test_seed_makes_runs_bit_identical():
    x, y = blobs()
    runs = []
    for seed in (3, 3, 4):
        model = small_model(optimizer="rmsprop")
        h = model.fit(x, y, epochs=2, batch_size=64, verbose=0, seed=seed, validation_split=0.2)
        runs.append((h.history, model.get_weights()))
    (h1, w1), (h2, w2), (h3, w3) = runs
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1["loss"] != h3["loss"]
    assert not np.array_equal(w1[0], w3[0])


def test_shuffle_false_and_validation_data_and_split():
    x, y = blobs()
    model = small_model()
    h = model.fit(x, y, epochs=2, batch_size=100, verbose=0, shuffle=False, seed=0,
                  validation_data=(x[:50], y[:50]))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h.history["val_loss"][-1] == pytest.approx(
        model.evaluate(x[:50], y[:50], verbose=0)[0], rel=1e-12)
    # validation_split holds out the LAST fraction (Keras): its metrics are evaluate's on it
    model2 = small_model()
    h2 = model2.fit(x, y, epochs=1, batch_size=100, verbose=0, seed=0, validation_split=0.25)
    assert h2.history["val_accuracy"][0] == pytest.approx(
        model2.evaluate(x[450:], y[450:], verbose=0)[1])


def test_training_step_allocates_nothing_once_warm():
    """Steps reuse the workspaces: no array as large as any batch-sized buffer is allocated.

    tracemalloc sees NumPy's data allocations; the peak over 16 steps must stay below half
    the smallest batch-sized workspace array (32 KiB at batch 4096), leaving room only for
    transient Python objects (views, tuples, floats) of the call path; CPython's tuple
    free lists make "current" creep by a few bytes a step, so it is not compared.
    Parameter-sized
    buffers (gradients, optimizer state) are checked by identity.
    """
    batch = 4096
    x, y = blobs(n=2 * batch, features=32)
    model = small_model(hidden=64)
    model.fit(x, y, epochs=1, batch_size=batch, verbose=0, seed=0)     # warm-up
    ws = model._workspaces[batch]
    arrays = [id(a) for a in ws.arrays()]
    buffers = [id(a) for a in model.gradients + model.optimizer.get_state()["velocity"]]
    smallest = min(a.nbytes for a in ws.arrays())
    labels = y.astype(np.intp)
    order = np.random.default_rng(0).permutation(2 * batch)
    tracemalloc.start()
    try:
        model._fit_batch(x, labels, order, 0, batch)
        model._fit_batch(x, labels, None, 0, batch)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for step in range(8):
            start = batch * (step % 2)
            model._fit_batch(x, labels, order, start, start + batch)
            model._fit_batch(x, labels, None, start, start + batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert smallest == batch * 8                    # labels / row losses
    assert peak - base < smallest // 2, (peak - base, smallest)
    model.fit(x, y, epochs=1, batch_size=batch, verbose=0, seed=1)
    assert [id(a) for a in model._workspaces[batch].arrays()] == arrays   # reused
    assert [id(a) for a in model.gradients + model.optimizer.get_state()["velocity"]] == buffers


def test_train_on_batch_returns_loss_and_accuracy():
    x, y = blobs(n=64)
    model = small_model()
    loss, acc = model.train_on_batch(x, y)
    assert 0 < loss < 10 and 0 <= acc <= 1
    logs = model.train_on_batch(x, y, return_dict=True)
    assert list(logs) == ["loss", "accuracy"] and logs["loss"] < loss


def test_evaluate_return_dict():
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=50, verbose=0, seed=1)
    loss, acc = model.evaluate(x, y, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs == {"loss": loss, "accuracy": acc}
    assert acc == pytest.approx(np.mean(model.predict(x).argmax(axis=1) == y))
    bare = pyblasnn.Sequential([layers.Dense(4, activation="softmax")])
    bare.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    bare.build((None, 20))
    assert bare.evaluate(x, y, verbose=0, return_dict=True) == {
        "loss": bare.evaluate(x, y, verbose=0)}


# -- summary and output --------------------------------------------------------------------

def book_model():
    return pyblasnn.Sequential([layers.Dense(512, activation="relu", name="dense"),
                                layers.Dense(10, activation="softmax", name="dense_1")],
                               name="sequential")


BOOK_SUMMARY = """\
Model: "sequential"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
dense (Dense)                (None, 512)               401920    
_________________________________________________________________
dense_1 (Dense)              (None, 10)                5130      
=================================================================
Total params: 407,050
Trainable params: 407,050
Non-trainable params: 0
_________________________________________________________________
"""


def test_summary_keras_table():
    model = book_model()
    with pytest.raises(ValueError, match="has not been built"):
        model.summary()
    model.build((None, 784))
    lines = []
    model.summary(print_fn=lines.append)
    assert "\n".join(lines) + "\n" == BOOK_SUMMARY
    assert model.count_params() == 407050
    with_input = pyblasnn.Sequential([layers.Input(shape=(784,)), *book_model().layers])
    lines2 = []
    with_input.summary(print_fn=lines2.append)          # known from Input, before building
    assert "Total params: 407,050" in lines2


PROGRESS_LINE = re.compile(r"^(\d+)/\1 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: \d\.\d{4}(e[-+]\d+)?"
                           r" - accuracy: \d\.\d{4}$")


def test_progress_output_per_verbosity(capsys):
    x, y = blobs(n=200)
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=32, verbose=1)       # captured: not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert PROGRESS_LINE.match(lines[1]) and lines[1].startswith("7/7 ["), lines[1]
    model.fit(x, y, epochs=1, batch_size=32, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"^5/5 - \d+s - loss: \d\.\d{4}(e[-+]\d+)? - accuracy: \d\.\d{4} - val_loss: "
                    r"\d\.\d{4}(e[-+]\d+)? - val_accuracy: \d\.\d{4} - \d+(us|ms|s)/epoch - \d+(us|ms)/step$",
                    lines[1]), lines[1]
    model.evaluate(x, y, verbose=1)
    out = capsys.readouterr().out
    assert re.match(r"^7/7 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: \d\.\d{4}(e[-+]\d+)? - "
                    r"accuracy: \d\.\d{4}\n$", out), out


def test_progbar_redraws_in_place_on_a_terminal():
    stream = io.StringIO()
    bar = Progbar(469, stream=stream, dynamic=True, interval=0)
    bar.update(1, [("loss", 2.5)])
    bar.update(235, [("loss", 0.25)])
    bar.update(469, [("loss", 0.2524), ("accuracy", 0.9273)], finalize=True)
    out = stream.getvalue()
    frames = out.split("\r")[1:]
    assert len(frames) == 3 and out.endswith("\n") and out.count("\n") == 1
    assert frames[0].startswith("  1/469 [..............................] - ETA: ")
    assert frames[1].startswith("235/469 [==============>...............] - ETA: ")
    assert re.match(r"469/469 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: 0\.2524 - "
                    r"accuracy: 0\.9273\n$", frames[2]), frames[2]
    assert Progbar(10).bar(10) == "10/10 [==============================]"


# -- save / load ------------------------------------------------------------------------------

def test_save_load_round_trip_and_resume(tmp_path):
    x, y = blobs()
    model = small_model(optimizer=optimizers.RMSprop(0.01, momentum=0.5))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=0)
    path = tmp_path / "model.npz"
    model.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]             # no temp file left behind
    loaded = models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    assert repr(loaded.optimizer) == repr(model.optimizer)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # optimizer state restored: training on continues identically
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=5)
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=5)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    # weights only
    wpath = tmp_path / "w.npz"
    model.save_weights(wpath)
    fresh = small_model()
    fresh.load_weights(wpath)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_save_overwrites_atomically(tmp_path, monkeypatch):
    x, y = blobs(n=64)
    model = small_model()
    model.fit(x, y, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


def test_load_rejects_corrupt_and_mismatched_files(tmp_path):
    x, y = blobs(n=64)
    model = small_model()
    model.fit(x, y, verbose=0)
    good = tmp_path / "good.npz"
    model.save(good)
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(blob[: len(blob) // 2])
    flipped = tmp_path / "flipped.npz"
    middle = len(blob) // 2
    flipped.write_bytes(blob[:middle] + bytes([blob[middle] ^ 0xFF]) + blob[middle + 1:])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    for path in (truncated, flipped, garbage):
        with pytest.raises(ValueError, match="not a readable pyblasnn model file"):
            models.load_model(path)
    with pytest.raises(ValueError, match="not a pyblasnn model file"):
        models.load_model(other)
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.npz")
    wider = small_model(hidden=33)
    wider.build((None, 20))
    before = [w.copy() for w in wider.get_weights()]    # snapshot before the failed load
    with pytest.raises(ValueError, match=r"expects \(20, 33\)"):
        wider.load_weights(good)
    deeper = pyblasnn.Sequential([layers.Dense(32, activation="relu"), layers.Dense(4),
                                  layers.Dense(4)])
    with pytest.raises(ValueError, match="holds 2 layers, the model has 3"):
        deeper.load_weights(good)
    after = wider.get_weights()
    assert len(after) == len(before)
    for a, b in zip(before, after):                   # a failed load changed nothing
        np.testing.assert_array_equal(a, b)


# -- bad input --------------------------------------------------------------------------------

def _fitted():
    x, y = blobs(n=64)
    model = small_model()
    model.fit(x, y, verbose=0)
    return model


X, Y = blobs(n=64)
BAD = [
    (lambda: pyblasnn.Sequential([layers.Dense(4)]).fit(X, Y), RuntimeError,
     "must be compiled before fit()"),
    (lambda: small_model().fit(X, Y[:10], verbose=0), ValueError, "got 10 labels for 64 samples"),
    (lambda: _fitted().fit(X[:, :5], Y, verbose=0), ValueError,
     "expects 20 features per sample, got x with shape (64, 5)"),
    (lambda: small_model().fit(X.reshape(64, 4, 5), Y, verbose=0), ValueError,
     "x has shape (64, 4, 5): dense"),
    (lambda: small_model().fit(X.reshape(64, 4, 5), Y, verbose=0), ValueError,
     "expects 2-D input (samples, features), got samples of shape (4, 5); flatten it first"),
    (lambda: small_model().fit(X, Y + 10, verbose=0), ValueError, "out of range for 4 classes"),
    (lambda: small_model().fit(X, Y - 1.5, verbose=0), ValueError, "non-integer"),
    (lambda: small_model().fit(X, Y, batch_size=0, verbose=0), ValueError,
     "batch_size must be a positive int"),
    (lambda: small_model().fit(X, Y, epochs=-1, verbose=0), ValueError, "epochs must be"),
    (lambda: small_model().fit(X, Y, verbose=3), ValueError, "verbose must be 0, 1, 2"),
    (lambda: small_model().fit(X, Y, validation_split=1.0, verbose=0), ValueError,
     "validation_split must be in [0, 1)"),
    (lambda: small_model().fit(X, Y, validation_data=X, verbose=0), ValueError,
     "validation_data must be a tuple"),
    (lambda: small_model().fit(X[:0], Y[:0], verbose=0), ValueError, "x has no samples"),
    (lambda: small_model().fit(X.astype(str), Y, verbose=0), TypeError, "x must hold numbers"),
    (lambda: _fitted().evaluate(X, Y[:-1], verbose=0), ValueError, "got 63 labels for 64"),
    (lambda: small_model().predict(X), ValueError, "has not been built"),
    (lambda: small_model().compile(optimizer="adagrad", loss="sparse_categorical_crossentropy"),
     ValueError, "unknown optimizer 'adagrad'"),
    (lambda: small_model().compile(loss="mse"), ValueError, "unknown loss 'mse'"),
    (lambda: small_model().compile(loss="sparse_categorical_crossentropy", metrics=["auc"]),
     ValueError, "unknown metric 'auc'"),
    (lambda: small_model().compile(), ValueError, "a loss is required"),
    (lambda: pyblasnn.Sequential(["dense"]), TypeError, "expected a pyblasnn.layers.Layer"),
    (lambda: pyblasnn.Sequential([layers.Dense(2), layers.Input((3,))]), ValueError,
     "Input must come before"),
    (lambda: pyblasnn.Sequential([layers.Dense(2), layers.Dense(2, dtype="float64")]),
     TypeError, "differs from the model's float32"),
    (lambda: _fitted().set_weights([]), ValueError, "model has 4 weight arrays, got 0"),
]


@pytest.mark.parametrize("call, exc, fragment", BAD)
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value)


def test_public_names():
    assert pyblasnn.Sequential is models.Sequential
    for name in ("layers", "losses", "optimizers", "metrics", "models", "datasets"):
        assert hasattr(pyblasnn, name), name
    assert pyblasnn.metrics.get("accuracy").name == "accuracy"
