"""Finding and declaring the shared library."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import oci_cache
from oci_cache._lib import (
    DECLARED_FUNCTIONS,
    LIBRARY_ENV,
    LIBRARY_FILE,
    LibraryNotFoundError,
    find_library,
)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
HEADER = Path(__file__).resolve().parents[3] / "include" / "oci_cache.h"


def import_in_subprocess(environment: dict) -> subprocess.CompletedProcess:
    """Import the package in a fresh interpreter and print which library it loaded."""
    env = {key: value for key, value in os.environ.items() if key != LIBRARY_ENV}
    env.update(environment)
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    return subprocess.run(
        [sys.executable, "-c", "import oci_cache; print(oci_cache.LIBRARY_PATH)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_library_is_found_through_the_environment_variable(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "liboci_cache-renamed.so"
    elsewhere.parent.mkdir()
    elsewhere.symlink_to(oci_cache.LIBRARY_PATH)

    imported = import_in_subprocess({LIBRARY_ENV: str(elsewhere)})

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == str(elsewhere)


def test_environment_variable_naming_no_file_fails_the_import(tmp_path):
    missing = tmp_path / "missing.so"

    imported = import_in_subprocess({LIBRARY_ENV: str(missing)})

    assert imported.returncode != 0
    assert "LibraryNotFoundError" in imported.stderr
    assert str(missing) in imported.stderr


def test_library_next_to_the_package_comes_first(tmp_path):
    (tmp_path / LIBRARY_FILE).write_bytes(b"")

    found = find_library(tmp_path, None, {LIBRARY_ENV: "/elsewhere/liboci_cache.so"})

    assert found == tmp_path / LIBRARY_FILE


def test_repository_build_output_is_the_fallback(tmp_path):
    package_dir, repo = tmp_path / "package", tmp_path / "repo"
    package_dir.mkdir()
    (repo / "target" / "release").mkdir(parents=True)
    (repo / "Cargo.toml").write_text("")
    (repo / "target" / "release" / LIBRARY_FILE).write_bytes(b"")

    found = find_library(package_dir, repo, {})

    assert found == repo / "target" / "release" / LIBRARY_FILE


def test_missing_library_error_lists_every_place_tried(tmp_path):
    package_dir, repo = tmp_path / "package", tmp_path / "repo"
    package_dir.mkdir()
    repo.mkdir()
    (repo / "Cargo.toml").write_text("")

    with pytest.raises(LibraryNotFoundError) as raised:
        find_library(package_dir, repo, {})

    message = str(raised.value)
    assert isinstance(raised.value, ImportError)
    assert str(package_dir / LIBRARY_FILE) in message
    assert f"${LIBRARY_ENV}: not set" in message
    assert str(repo / "target" / "debug" / LIBRARY_FILE) in message
    assert str(repo / "target" / "release" / LIBRARY_FILE) in message


@pytest.mark.skipif(not HEADER.is_file(), reason="not in a source checkout")
def test_every_function_of_the_header_is_declared():
    declared_in_header = set(re.findall(r"^\S.*?\b(oci_cache_\w+)\(", HEADER.read_text(), re.M))

    assert declared_in_header == set(DECLARED_FUNCTIONS)


def test_loaded_library_reports_its_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", oci_cache.library_version())
