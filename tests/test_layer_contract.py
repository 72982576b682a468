"""The layer contract: a layer type defined here, outside the package, trains inside
Sequential; Flatten and Dropout against NumPy; summary with weightless layers."""
import re

import numpy as np
import pytest

import pyblasnn
from pyblasnn import layers, models, optimizers


class Scale(layers.Layer):
    """y = x * scale, one weight per feature (defined only in this test file)."""

    def build(self, input_shape, rng=None):
        super().build(input_shape, rng)
        self.scale = self.add_weight("scale", input_shape, "ones", rng)

    def forward(self, x, out, training=False):
        return np.multiply(x, self.scale, out=out)

    def backward(self, dy, x, y, dx):
        np.sum(dy * x, axis=0, out=self._gradients["scale"])
        return None if dx is None else np.multiply(dy, self.scale, out=dx)


def blobs(n=600, features=20, classes=4, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * spread
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(np.float32), y.astype(np.uint8)


def numpy_forward(x, weights, scale=None):
    a = x.astype(np.float64) * (1 if scale is None else scale)
    w1, b1, w2, b2 = weights
    z = np.maximum(a @ w1 + b1, 0) @ w2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_custom_layer_trains_evaluates_predicts_saves_and_loads(tmp_path):
    x, y = blobs()
    model = pyblasnn.Sequential([Scale(), layers.Dense(16, activation="relu"),
                                 layers.Dense(4, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:500], y[:500], epochs=3, batch_size=32, verbose=0, seed=0)
    scale = model.layers[0].scale
    assert scale.shape == (20,) and not np.allclose(scale, 1.0)      # it was trained
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, acc = model.evaluate(x[500:], y[500:], verbose=0)
    assert acc >= 0.9
    probs = model.predict(x[500:])
    np.testing.assert_allclose(probs, numpy_forward(x[500:], model.weights[1:], scale),
                               rtol=1e-4, atol=1e-6)
    assert model.count_params() == 20 + 20 * 16 + 16 + 16 * 4 + 4
    path = tmp_path / "scale.npz"
    model.save(path)
    loaded = models.load_model(path)
    assert type(loaded.layers[0]) is Scale
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=3)
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=3)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_custom_layer_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, size=6)
    model = pyblasnn.Sequential([Scale(dtype="float64"),
                                 layers.Dense(3, activation="softmax", dtype="float64")])
    model.compile(optimizer=optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    model.build((None, 4), rng=np.random.default_rng(1))
    model.layers[0].scale[...] = rng.uniform(0.5, 1.5, 4)
    s0 = model.layers[0].scale.copy()
    w0 = model.get_weights()
    model.train_on_batch(x, y)
    grad = s0 - model.layers[0].scale
    model.set_weights(w0)
    num = np.zeros(4)
    for i in range(4):
        for sign in (1, -1):
            model.layers[0].scale[i] = s0[i] + sign * 1e-6
            num[i] += sign * model.evaluate(x, y, verbose=0) / 2e-6
        model.layers[0].scale[i] = s0[i]
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    assert np.abs(grad).max() > 1e-3


def test_unknown_layer_class_in_a_file_is_named(tmp_path):
    class Temporary(Scale):
        pass
    model = pyblasnn.Sequential([Temporary(), layers.Dense(2)])
    model.build((None, 3))
    path = tmp_path / "t.npz"
    model.save(path)
    del layers._LAYER_CLASSES["Temporary"]
    with pytest.raises(ValueError, match="unknown layer class 'Temporary'"):
        models.load_model(path)


def test_default_names_are_keras_snake_case():
    """A layer is named after its class as Keras names it: acronyms and digits stay whole."""
    class BlurReLU2D(layers.Layer):
        pass

    class Conv2DLike(layers.Layer):
        pass
    for cls, base in ((BlurReLU2D, "blur_re_lu2d"), (Conv2DLike, "conv2d_like"),
                      (layers.Dropout, "dropout")):
        names = [cls(0.5).name if cls is layers.Dropout else cls().name for _ in range(2)]
        assert all(re.fullmatch(rf"{base}(_\d+)?", n) for n in names), names
        assert names[0] != names[1]
    for cls in (BlurReLU2D, Conv2DLike):
        del layers._LAYER_CLASSES[cls.__name__]


# -- Flatten ----------------------------------------------------------------------------------

def images(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    x = rng.random((n, 28, 28)).astype(np.float32) * 0.2
    x[np.arange(n), y, :] += 1.0                        # the label's row lights up
    return x, y


def test_flatten_takes_unreshaped_images_and_changes_nothing_else():
    x, y = images()
    flat = pyblasnn.Sequential([layers.Dense(32, activation="relu"),
                                layers.Dense(10, activation="softmax")])
    with_flatten = pyblasnn.Sequential([layers.Flatten(), layers.Dense(32, activation="relu"),
                                        layers.Dense(10, activation="softmax")])
    results = []
    for model, data in ((flat, x.reshape(300, 784)), (with_flatten, x)):
        model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        h = model.fit(data, y, epochs=2, batch_size=64, verbose=0, seed=4)
        results.append((h.history, model.get_weights(), model.predict(data),
                        model.evaluate(data, y, verbose=0)))
    (h1, w1, p1, e1), (h2, w2, p2, e2) = results
    assert h1 == h2 and e1 == e2                        # bit for bit: Flatten is a view
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    assert with_flatten.input_shape == (28, 28)
    assert with_flatten.layers[0].forward(x[:3], None).base is not None        # no copy
    with pytest.raises(ValueError, match=r"expects samples of shape \(28, 28\)"):
        with_flatten.predict(x.reshape(300, 784))


def test_flatten_backward_reshapes_the_gradient():
    f = layers.Flatten()
    x = np.arange(24.0).reshape(2, 3, 4)
    y = f(x)
    assert y.shape == (2, 12) and f.compute_output_shape((3, 4)) == (12,)
    dy = np.arange(24.0).reshape(2, 12) * 2
    np.testing.assert_array_equal(f.backward(dy, x, y, np.empty_like(x)), dy.reshape(2, 3, 4))
    assert f.backward(dy, x, y, None) is None


# -- Dropout ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_training_scales_kept_units_and_zeroes_the_rate(dtype, rate):
    x = (np.random.default_rng(0).random((400, 250)) + 0.5).astype(dtype)   # no zeros
    d = layers.Dropout(rate, seed=1)
    np.testing.assert_array_equal(d(x), x)                  # inference: the identity
    y = d(x, training=True)
    assert y.shape == x.shape and y.dtype == dtype
    kept = y != 0
    assert abs(1 - kept.mean() - rate) < 0.01               # 100,000 draws
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    np.testing.assert_array_equal(d.mask, np.where(kept, dtype(1 / (1 - rate)), 0))
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    dx = d.backward(dy.copy(), x, y, np.empty_like(x))
    np.testing.assert_array_equal(dx == 0, ~kept)           # the same mask as the forward
    np.testing.assert_allclose(dx[kept], dy[kept] / (1 - rate), rtol=1e-6)


def test_dropout_seeds_make_masks_reproducible():
    x = np.ones((50, 40), np.float32)
    a, b, c = layers.Dropout(0.5, seed=3), layers.Dropout(0.5, seed=3), layers.Dropout(0.5, seed=4)
    ma, mb, mc = (d(x, training=True) for d in (a, b, c))
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(ma, mc)
    assert not np.array_equal(a(x, training=True), ma)      # a new mask every step


def dropout_model():
    model = pyblasnn.Sequential([layers.Dense(32, activation="relu"), layers.Dropout(0.3),
                                 layers.Dense(4, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_dropout_in_a_model_is_seeded_by_fit_and_off_at_inference():
    x, y = blobs(spread=0.4)
    runs = []
    for seed in (5, 5, 6):
        model = dropout_model()
        h = model.fit(x, y, epochs=2, batch_size=64, verbose=0, seed=seed)
        runs.append((h.history, model))
    assert runs[0][0] == runs[1][0] and runs[0][0] != runs[2][0]
    model = runs[0][1]
    probs = model.predict(x)
    np.testing.assert_allclose(probs, numpy_forward(x, model.weights), rtol=1e-4, atol=1e-6)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(-np.log(probs[np.arange(600), y]).mean(), rel=1e-4)
    assert acc == pytest.approx(np.mean(probs.argmax(axis=1) == y)) and acc > 0.5


# -- summary ----------------------------------------------------------------------------------

SUMMARY = """\
Model: "mnist_dropout"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
flatten (Flatten)            (None, 784)               0         
_________________________________________________________________
dense (Dense)                (None, 512)               401920    
_________________________________________________________________
dropout (Dropout)            (None, 512)               0         
_________________________________________________________________
dense_1 (Dense)              (None, 10)                5130      
=================================================================
Total params: 407,050
Trainable params: 407,050
Non-trainable params: 0
_________________________________________________________________
"""


def test_summary_with_flatten_and_dropout_before_and_after_building():
    model = pyblasnn.Sequential([layers.Input(shape=(28, 28)), layers.Flatten(name="flatten"),
                                 layers.Dense(512, activation="relu", name="dense"),
                                 layers.Dropout(0.5, name="dropout"),
                                 layers.Dense(10, activation="softmax", name="dense_1")],
                                name="mnist_dropout")
    lines = []
    model.summary(print_fn=lines.append)                    # known from Input, not built
    assert "\n".join(lines) + "\n" == SUMMARY
    assert not model.built
    model.build((None, 28, 28))
    lines = []
    model.summary(print_fn=lines.append)
    assert "\n".join(lines) + "\n" == SUMMARY
    assert model.count_params() == 407050


def test_weightless_layers_take_the_models_dtype():
    model = pyblasnn.Sequential([layers.Flatten(), layers.Dense(3, dtype="float64"),
                                 layers.Dropout(0.1)])
    model.build((None, 2, 2))
    assert model.dtype == np.float64
    assert model.predict(np.ones((2, 2, 2))).dtype == np.float64
    with pytest.raises(TypeError, match="expected a pyblasnn.layers.Layer"):
        model.add(object())
