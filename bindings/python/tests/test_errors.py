"""Failures: each result code of the library raises its own exception, with its message."""

from __future__ import annotations

import pytest

import oci_cache
from oci_cache import (
    InvalidArgumentError,
    InvalidReferenceError,
    NotFoundError,
    OciCacheError,
)
from oci_cache._lib import lib, text
from oci_cache.errors import error_for


def test_invalid_reference_raises_invalid_reference_error(cache):
    with pytest.raises(InvalidReferenceError) as raised:
        cache.fetch("Not A Reference!")

    assert raised.value.code == 2
    assert "invalid reference" in str(raised.value)
    assert "Not A Reference!" in str(raised.value)


def test_missing_tag_raises_not_found_error(cache, sample):
    with pytest.raises(NotFoundError) as raised:
        cache.fetch(sample.reference("9.9.9"))

    assert raised.value.code == 3
    assert f"{sample.reference('9.9.9')}" in str(raised.value)
    assert "not found" in str(raised.value)


def test_nul_in_a_reference_is_rejected_before_reaching_c(cache):
    # C would read only up to the NUL and fetch another image.
    with pytest.raises(InvalidArgumentError, match="NUL"):
        cache.fetch("registry.example/steps/x:1.0.0\0ignored")


def test_out_of_range_option_is_an_invalid_argument(cache_dir):
    with pytest.raises(InvalidArgumentError, match="max concurrent layers"):
        oci_cache.Cache(cache_dir, max_concurrent_layers=0)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        oci_cache.Cache(cache_dir, max_concurrent_layers=-1)


def test_every_result_code_has_its_own_exception_class():
    names = {}
    for code in range(1, 16):
        error = error_for(code, "message")
        assert type(error) is not OciCacheError
        assert isinstance(error, OciCacheError)
        assert error.code == code
        assert str(error) == "message"
        names[text(lib.oci_cache_result_name(code))] = type(error).__name__

    assert names["panic"] == "InternalError"
    assert names["io"] == "CacheIOError"
    assert names["not_cached"] == "NotCachedError"
    for name, class_name in names.items():
        if name not in ("panic", "io"):
            assert class_name.lower() == name.replace("_", "") + "error"


def test_a_code_this_version_does_not_know_raises_the_base_class():
    error = error_for(99, "from a newer library")

    assert type(error) is OciCacheError
    assert error.code == 99
