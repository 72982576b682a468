"""Reliability of the training loop: inference from several threads, training in several
threads, Ctrl-C on a step boundary, nan / inf losses, and fit against a plain NumPy loop of
the same maths.

Everything that could hang runs under a timeout (futures' ``result(timeout=...)``, a watchdog
callback in the interrupt test).
"""
import concurrent.futures
import copy
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import pyblasnn
from pyblasnn import callbacks, layers, optimizers
from pyblasnn.training import NonFiniteLossError

TIMEOUT = 120


def blobs(n=600, features=20, classes=4, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 3
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(dtype), y.astype(np.uint8)


def mlp(hidden=(32,), classes=4, optimizer=None, seed=0, features=20):
    model = pyblasnn.Sequential([layers.Dense(h, activation="relu") for h in hidden]
                                + [layers.Dense(classes, activation="softmax")])
    model.compile(optimizer=optimizer or optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.build((None, features), rng=np.random.default_rng(seed))
    return model


def in_threads(fns, timeout=TIMEOUT):
    """Run each fn in its own thread, all released together; their results, in order."""
    barrier = threading.Barrier(len(fns))

    def run(fn):
        barrier.wait(timeout)
        return fn()

    with concurrent.futures.ThreadPoolExecutor(len(fns)) as pool:
        futures = [pool.submit(run, fn) for fn in fns]
        return [f.result(timeout=timeout) for f in futures]


# -- 1. threads -------------------------------------------------------------------------------

def test_predict_and_evaluate_from_4_threads_equal_the_single_threaded_result():
    x, y = blobs(n=300)
    model = mlp(hidden=(64, 32))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=0)
    want_p = model.predict(x, batch_size=32)
    want_e = model.evaluate(x, y, batch_size=32, verbose=0)

    def work():
        got = []
        for i in range(30):
            if i % 3 == 2:
                got.append(("evaluate", model.evaluate(x, y, batch_size=32, verbose=0)))
            else:
                got.append(("predict", model.predict(x, batch_size=32)))
        return got

    wrong = 0
    for results in in_threads([work] * 4):
        for kind, got in results:
            if kind == "predict":
                wrong += got.shape != want_p.shape or not np.array_equal(got, want_p)
            else:
                wrong += got != want_e
    assert wrong == 0, f"{wrong} of 120 concurrent calls differ from the single-threaded one"


def test_fit_of_two_models_in_two_threads_equals_their_sequential_runs():
    x, y = blobs(n=256)

    def make():
        return [mlp(hidden=(32,), seed=1), mlp(hidden=(16, 16), seed=2,
                                               optimizer=optimizers.Adam(0.01))]

    def train(model, seed):
        history = model.fit(x, y, epochs=3, batch_size=24, verbose=0, seed=seed)
        return history.history, model.get_weights()

    sequential = [train(m, seed) for m, seed in zip(make(), (10, 11))]
    a, b = make()
    parallel = in_threads([lambda: train(a, 10), lambda: train(b, 11)])
    for (h_seq, w_seq), (h_par, w_par) in zip(sequential, parallel):
        assert h_par == h_seq
        assert len(w_par) == len(w_seq)
        for got, want in zip(w_par, w_seq):
            np.testing.assert_array_equal(got, want)


class _Rendezvous(layers.Layer):
    """An identity layer whose training forward calls ``hook``: inference of other threads
    then runs in the middle of a training step, between its forward and backward passes."""

    hook = None

    def __init__(self, name=None):
        super().__init__(name=name, dtype=None)

    def forward(self, x, out, training=False):
        if training and self.hook is not None:
            self.hook()
        return x

    def backward(self, dy, x, y, dx):
        return None if dx is None else dy


def test_predict_in_other_threads_mid_step_does_not_disturb_fit():
    """Inference writes nothing the training step reads (its own workspaces; Dropout keeps
    its training mask), so a fit with predict / evaluate calls of two other threads inside
    every step gives bitwise the result of a fit alone."""
    x, y = blobs(n=256)

    def make():
        model = pyblasnn.Sequential([layers.Dense(32, activation="relu"),
                                     layers.Dropout(0.3, seed=4), _Rendezvous(),
                                     layers.Dense(4, activation="softmax")])
        model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.build((None, 20), rng=np.random.default_rng(0))
        return model

    alone = make()
    alone.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1)
    model = make()
    cond = threading.Condition()
    state = {"asked": 0, "taken": 0, "served": 0, "done": False}

    def mid_step():                         # in the training thread: wait for one inference
        with cond:
            state["asked"] += 1
            cond.notify_all()
            asked = state["asked"]
            assert cond.wait_for(lambda: state["served"] >= asked, TIMEOUT)

    model.layers[2].hook = mid_step

    def train():
        try:
            return model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1).history
        finally:
            with cond:
                state["done"] = True
                cond.notify_all()

    def infer():
        while True:
            with cond:
                assert cond.wait_for(lambda: state["done"] or state["asked"] > state["taken"],
                                     TIMEOUT)
                if state["done"]:
                    return
                state["taken"] += 1
            model.predict(x[:64], batch_size=16)                    # the training batch size
            model.evaluate(x[:64], y[:64], batch_size=16, verbose=0)
            with cond:
                state["served"] += 1
                cond.notify_all()

    history, _, _ = in_threads([train, infer, infer])
    assert state["served"] == 2 * 16
    assert history == alone.history.history
    for got, want in zip(model.get_weights(), alone.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_fit_on_one_model_from_two_threads_raises_instead_of_interleaving():
    x, y = blobs(n=64)
    model = mlp()
    started, release = threading.Event(), threading.Event()

    class Hold(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.set()
            assert release.wait(TIMEOUT)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(model.fit, x, y, epochs=1, verbose=0, callbacks=[Hold()])
        try:
            assert started.wait(TIMEOUT)
            with pytest.raises(RuntimeError, match="already being trained in another thread"):
                model.fit(x, y, epochs=1, verbose=0)
            with pytest.raises(RuntimeError, match="already being trained"):
                model.train_on_batch(x, y)
            model.predict(x)                # inference is allowed meanwhile
        finally:
            release.set()
        running.result(timeout=TIMEOUT)
    model.fit(x, y, epochs=1, verbose=0)    # the lock was released

    class Nested(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.fit(x, y, epochs=1, verbose=0)

    with pytest.raises(RuntimeError, match="in this thread"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Nested()])
    twin = copy.deepcopy(model)             # the advertised way to train in parallel
    twin.fit(x, y, epochs=1, verbose=0, seed=3)
    model.fit(x, y, epochs=1, verbose=0, seed=3)
    for got, want in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


# -- 2. Ctrl-C ---------------------------------------------------------------------------------

# Sends SIGINT to its parent after each delay read from stdin, then says "sent". A separate
# process, not a thread: a Python thread needs the GIL to send, so it only ever sends while
# the main thread runs a GIL-free kernel (a GEMM), and the interrupt would then almost never
# land inside the optimizer's update, where tearing happens.
SENDER = """\
import os, signal, sys, time
for line in sys.stdin:
    time.sleep(float(line))
    os.kill(os.getppid(), signal.SIGINT)
    print("sent", flush=True)
"""


def test_sigint_at_random_points_lands_on_a_step_boundary():
    """SIGINT 80 times at random moments of fit: every parameter and optimizer slot must hold
    the state after exactly ``optimizer.iterations`` steps (a reference model replays them
    with train_on_batch), ``model.history`` must be whole, and fit must go on from there.

    One batch per epoch on the same rows (shuffle=False), so the trajectory is the same
    sequence of identical steps wherever an interrupt lands; 4 layers, so an update that a
    KeyboardInterrupt splits leaves parameters of two different steps.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    x, y = blobs(n=48, features=16)
    hidden = (48, 48, 48)

    def make():
        return mlp(hidden=hidden, features=16, seed=5,
                   optimizer=optimizers.SGD(0.05, momentum=0.9))

    model, ref = make(), make()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=20, batch_size=48, shuffle=False, verbose=0)
    step_time = (time.perf_counter() - t0) / 20
    for _ in range(20):
        ref.train_on_batch(x, y)

    class Watchdog(callbacks.Callback):
        """Fails the test instead of hanging if a signal were ever lost."""
        def on_train_begin(self, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if time.monotonic() - self.start > 30:
                raise AssertionError("no KeyboardInterrupt within 30 s")

    sender = subprocess.Popen([sys.executable, "-c", SENDER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    interrupted = 0
    try:
        for trial in range(80):
            before, last_history = model.optimizer.iterations, model.history
            try:
                sender.stdin.write(f"{rng.uniform(0, 12 * step_time)}\n")
                sender.stdin.flush()
                model.fit(x, y, epochs=10 ** 7, batch_size=48, shuffle=False, verbose=0,
                          callbacks=[Watchdog()])
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                assert sender.stdout.readline() == "sent\n"
            _assert_on_a_step_boundary(model, ref, x, y, before, last_history, f"trial {trial}")
    finally:
        sender.stdin.close()
        sender.wait(TIMEOUT)
    assert interrupted == 80
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handed back


def _assert_on_a_step_boundary(model, ref, x, y, before, last_history, where, call="fit"):
    """model (one batch (x, y) per epoch, shuffle=False) was interrupted in ``call``: every
    parameter and velocity holds the state after exactly ``optimizer.iterations`` steps (ref,
    a twin, replays them), the history is whole, the handler is handed back, the model
    trainable."""
    k = model.optimizer.iterations
    while ref.optimizer.iterations < k:
        ref.train_on_batch(x, y)
    assert ref.optimizer.iterations == k
    names = [f"{layer.name}.{w}" for layer in model.layers for w in layer.weight_names()]
    torn = [name for name, got, want in zip(names, model.weights, ref.weights)
            if not np.array_equal(got, want)]
    torn += [f"velocity of {name}" for name, got, want in zip(
                 names, model.optimizer.get_state()["velocity"],
                 ref.optimizer.get_state()["velocity"])
             if not np.array_equal(got, want)]
    assert not torn, (f"{where}: after {k} steps, {torn} do not hold the state "
                      f"of step {k} (an interrupted update)")
    history, done = model.history, k - before
    if call == "train_on_batch":    # one step or none, no history
        assert done in (0, 1) and history is last_history
    elif history is last_history:   # interrupted before this fit began training
        assert done == 0
    else:
        assert len(history.epoch) in (done - 1, done), (len(history.epoch), done)
        assert all(len(v) == len(history.epoch) for v in history.history.values())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, where
    assert not model._train_lock.locked(), f"{where}: the model stayed locked"


def _interrupted_at(n, fn, files):
    """fn() with SIGINT's handler run at the n-th call boundary in code from ``files``: a
    Python function's first instruction and the return of a C function, the points where
    CPython runs signal handlers (sys.setprofile's "call" and "c_return" events). Returns
    (fired, the exception fn raised or None)."""
    seen = 0
    fired = False

    def profile(frame, event, arg):
        nonlocal seen, fired
        if event in ("call", "c_return") and frame.f_code.co_filename in files:
            seen += 1
            if seen == n:
                fired = True
                handler = signal.getsignal(signal.SIGINT)
                if callable(handler):
                    handler(signal.SIGINT, frame)

    sys.setprofile(profile)
    try:
        fn()
    except BaseException as exc:        # noqa: B902 (KeyboardInterrupt is the point)
        return fired, exc
    finally:
        sys.setprofile(None)
    return fired, None


@pytest.mark.parametrize("call", ["fit", "train_on_batch"])
def test_sigint_at_every_call_boundary_of_a_training_call(call):
    """A SIGINT at each point where CPython can run its handler inside fit / train_on_batch
    (their entry and exit included: the lock, the handler swap) must surface as one
    KeyboardInterrupt, with the model on a step boundary, the handler handed back and the
    model trainable. Taking the lock outside the try that releases it left the model locked
    ("already being trained") after an unlucky Ctrl-C; a SIGINT pending while the handler was
    swapped in raised inside install and left pyblasnn's handler in place."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    import pyblasnn._interrupts as interrupts
    import pyblasnn.training as training
    files = {training.__file__, interrupts.__file__}
    x, y = blobs(n=24, features=8)

    def make():
        return mlp(hidden=(8, 8), features=8, seed=5,
                   optimizer=optimizers.SGD(0.05, momentum=0.9))

    model, ref = make(), make()
    model.fit(x, y, epochs=1, batch_size=24, shuffle=False, verbose=0)   # model.history
    ref.train_on_batch(x, y)

    def run():
        if call == "fit":
            model.fit(x, y, epochs=2, batch_size=24, shuffle=False, verbose=0)
        else:
            model.train_on_batch(x, y)

    n = 0
    while True:
        n += 1
        before, last_history = model.optimizer.iterations, model.history
        fired, exc = _interrupted_at(n, run, files)
        if not fired:
            assert exc is None
            break
        assert isinstance(exc, KeyboardInterrupt), f"boundary {n}: {exc!r}"
        _assert_on_a_step_boundary(model, ref, x, y, before, last_history, f"boundary {n}",
                                   call)
    assert n > 20, f"only {n - 1} boundaries: the profile hook saw nothing"


def test_sigint_handler_is_restored_and_other_threads_are_untouched():
    x, y = blobs(n=64)
    model = mlp()
    before = signal.getsignal(signal.SIGINT)
    model.fit(x, y, epochs=1, verbose=0)
    model.train_on_batch(x, y)
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(ValueError):          # an error inside fit also hands it back
        model.fit(x, y, epochs=1, verbose=0, callbacks=[_Raise()])
    assert signal.getsignal(signal.SIGINT) is before
    in_threads([lambda: model.fit(x, y, epochs=1, verbose=0)])   # no signal.signal there
    assert signal.getsignal(signal.SIGINT) is before


class _Raise(callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        raise ValueError("from a callback")


# -- 3. nan / inf losses ----------------------------------------------------------------------

def test_a_nan_pixel_stops_fit_at_its_step_with_the_weights_untouched():
    x, y = blobs(n=200)
    x[137, 3] = np.nan                      # sample 137: epoch 1, step 137 // 32 + 1 = 5
    model = mlp()
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1/3, step 5/7") as info:
        model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    assert isinstance(info.value, FloatingPointError)
    assert (info.value.epoch, info.value.step) == (1, 5) and np.isnan(info.value.loss)
    assert "1 non-finite value (nan/inf in x)" in str(info.value)
    assert "stop_on_nan=False" in str(info.value)
    assert model.optimizer.iterations == 4
    assert all(np.isfinite(w).all() for w in model.weights)
    ref = mlp()
    for start in range(0, 128, 32):
        ref.train_on_batch(x[start:start + 32], y[start:start + 32])
    for got, want in zip(model.weights, ref.weights):
        np.testing.assert_array_equal(got, want)
    assert model.history.epoch == []


def test_a_huge_learning_rate_stops_fit_naming_the_step():
    x, y = blobs(n=256)
    model = mlp(optimizer=optimizers.SGD(1e30))
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at epoch \d+/50, step \d+/8"):
        model.fit(x, y, epochs=50, batch_size=32, verbose=0, seed=0)


def test_stop_on_nan_false_trains_on_and_terminate_on_nan_stops_quietly(capsys):
    x, y = blobs(n=200)
    x[137, 3] = np.nan
    model = mlp()
    history = model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0,
                        stop_on_nan=False)
    assert len(history.epoch) == 3 and np.isnan(history.history["loss"]).all()
    assert model.optimizer.iterations == 21

    model = mlp()
    stopper = callbacks.TerminateOnNaN()
    history = model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0,
                        stop_on_nan=False, callbacks=[stopper])
    assert stopper.stopped_at == (0, 4)
    assert "Batch 4: Invalid loss, terminating training" in capsys.readouterr().out
    assert model.optimizer.iterations == 5           # the nan step ran, as in Keras
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])
    with pytest.raises(TypeError, match="stop_on_nan must be a bool"):
        model.fit(x, y, stop_on_nan="no")


def test_the_finite_check_stops_at_the_first_nan_of_a_later_epoch():
    x, y = blobs(n=96)
    model = mlp()

    class Poison(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.layers[0].kernel[0, 0] = np.inf

    with pytest.raises(NonFiniteLossError, match=r"at epoch 3/4, step 1/3") as info:
        model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[Poison()])
    assert "1 weight is already non-finite" in str(info.value)
    assert model.history.epoch == [0, 1]


# -- 4. fit against a NumPy loop of the same maths ----------------------------------------------

def _numpy_fit(weights, x, y, batch, epochs, order_rng, update):
    """The same training in float64 NumPy: Dense(relu) -> Dense(softmax), mean sparse
    cross-entropy with dlogits = (softmax - onehot) / n, shuffled minibatches."""
    w = [a.astype(np.float64) for a in weights]
    state = {}
    n = x.shape[0]
    order = np.arange(n, dtype=np.intp)
    t = 0
    for _ in range(epochs):
        order_rng.shuffle(order)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            xb, yb = x[idx].astype(np.float64), y[idx]
            k0, b0, k1, b1 = w
            h = np.maximum(xb @ k0 + b0, 0.0)
            z = h @ k1 + b1
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            dz = p.copy()
            dz[np.arange(len(idx)), yb] -= 1.0
            dz /= len(idx)
            dh = (dz @ k1.T) * (h > 0)
            grads = [xb.T @ dh, dh.sum(axis=0), h.T @ dz, dz.sum(axis=0)]
            t += 1
            for i, g in enumerate(grads):
                update(i, w[i], g, state, t)
    return w


def _sgd(lr, m):
    def update(i, w, g, state, t):
        v = state.setdefault(("v", i), np.zeros_like(w))
        v *= m
        v -= lr * g
        w += v
    return update


def _rmsprop(lr, rho, eps):
    def update(i, w, g, state, t):
        a = state.setdefault(("a", i), np.zeros_like(w))
        a *= rho
        a += (1 - rho) * g * g
        w -= lr * g / (np.sqrt(a) + eps)
    return update


def _adam(lr, b1, b2, eps):
    def update(i, w, g, state, t):
        m = state.setdefault(("m", i), np.zeros_like(w))
        v = state.setdefault(("v", i), np.zeros_like(w))
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w -= lr_t * m / (np.sqrt(v) + eps)
    return update


@pytest.mark.parametrize("optimizer, reference", [
    (lambda: optimizers.SGD(0.05, momentum=0.9), _sgd(0.05, 0.9)),
    (lambda: optimizers.RMSprop(0.001), _rmsprop(0.001, 0.9, 1e-7)),
    (lambda: optimizers.Adam(0.002), _adam(0.002, 0.9, 0.999, 1e-7)),
], ids=["sgd-momentum", "rmsprop", "adam"])
def test_fit_matches_a_numpy_loop_of_the_same_step(optimizer, reference):
    """Two seeded epochs of 203 samples in batches of 32 (the last one 11 rows), rows
    gathered in fit's shuffle order: the order is the numpy Generator fit documents for
    ``seed`` (the second child of SeedSequence(seed), shuffling arange(n) each epoch)."""
    x, y = blobs(n=203, features=12, classes=5, seed=3)
    seed = 1234
    model = pyblasnn.Sequential([layers.Dense(24, activation="relu"),
                                 layers.Dense(5, activation="softmax")])
    model.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy")
    model.build((None, 12), rng=np.random.default_rng(7))
    start = model.get_weights()
    assert model._loss_on_logits                        # the fused softmax path
    model.fit(x, y, epochs=2, batch_size=32, seed=seed, verbose=0)
    assert model.optimizer.iterations == 2 * 7

    order_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    want = _numpy_fit(start, x, y, 32, 2, order_rng, reference)
    names = ["kernel 0", "bias 0", "kernel 1", "bias 1"]
    for name, got, w, w0 in zip(names, model.get_weights(), want, start):
        assert got.dtype == np.float32 and got.shape == w.shape
        moved = np.abs(w - w0).max()
        assert moved > 1e-3, f"{name} barely moved: the comparison would prove nothing"
        np.testing.assert_allclose(got, w, rtol=2e-4, atol=2e-5 * max(1.0, moved),
                                   err_msg=name)
    # a different shuffle order must not match: the comparison sees the order
    other = _numpy_fit(start, x, y, 32, 2, np.random.default_rng(99), reference)
    assert not np.allclose(model.get_weights()[0], other[0], rtol=2e-4, atol=2e-5)
