import numpy as np

from occam.data.fingerprint import numpy_fingerprint

OPTIONS = {"features": "features", "label": "label", "shape": (2,)}


def test_same_content_same_key_across_copies():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    assert numpy_fingerprint({"x": x}, OPTIONS) == numpy_fingerprint({"x": x.copy()}, OPTIONS)


def test_any_change_of_content_dtype_or_options_changes_the_key():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    base = numpy_fingerprint({"x": x}, OPTIONS)
    changed = x.copy()
    changed[4, 1] = -1
    assert numpy_fingerprint({"x": changed}, OPTIONS) != base
    assert numpy_fingerprint({"x": x.astype(np.float64)}, OPTIONS) != base
    assert numpy_fingerprint({"x": x.reshape(2, 5)}, OPTIONS) != base
    assert numpy_fingerprint({"x": x}, {**OPTIONS, "label": None}) != base
