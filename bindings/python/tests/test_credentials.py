"""Credentials, private images, Docker configs and mirrors, against the test bed's registries.

Images are pushed to a plain registry and fetched from a secured one on the same storage, which
answers 401 with a Basic challenge unless given SECURED_USER's credentials.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest
from conftest import SECURED_PASSWORD, SECURED_USER, Registry, Sample

from oci_cache import Cache, Image, InvalidArgumentError, OciCacheError, UnauthorizedError


def open_cache(cache_dir: Path, **options) -> Cache:
    """A cache that reads no Docker config from the environment, so that only `options` decide
    which credentials it has."""
    return Cache(cache_dir, docker_config=False, **options)


def right_credentials(registry: Registry) -> dict[str, tuple[str, str]]:
    return {registry.host: (SECURED_USER, SECURED_PASSWORD)}


def closed_port() -> int:
    """A loopback port that nothing listens on: one just bound and released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_sample_files(image: Image, sample: Sample) -> None:
    assert [layer.digest for layer in image.layers] == [layer["digest"] for layer in sample.layers]
    assert "exec:" in (image.layers[1].path / "step.yml").read_text()
    assert (image.layers[0].path / "bin" / "hello").is_symlink()


def assert_unauthorized(cache: Cache, reference: str) -> None:
    """The fetch of `reference` raises UnauthorizedError naming it, and caches nothing."""
    with pytest.raises(UnauthorizedError) as raised:
        cache.fetch(reference)

    assert raised.value.code == 4
    assert reference in str(raised.value)
    status = cache.status(reference)
    assert not status.cached and status.manifest_digest is None


def test_right_credentials_fetch_from_the_secured_registry(secured_registry, repository, cache_dir):
    sample = secured_registry.push_sample(repository)

    with open_cache(cache_dir, credentials=right_credentials(secured_registry)) as cache:
        image = cache.fetch(sample.reference())

    assert image.manifest_digest == sample.manifest_digest
    assert_sample_files(image, sample)
    served = secured_registry.requests_for(repository)
    assert any(request.status == 200 for request in served), served


def test_wrong_password_raises_unauthorized_error(secured_registry, repository, cache_dir):
    sample = secured_registry.push_sample(repository)
    wrong = {secured_registry.host: (SECURED_USER, "wrong")}

    with open_cache(cache_dir, credentials=wrong) as cache:
        assert_unauthorized(cache, sample.reference())


def test_no_credentials_raise_unauthorized_error(secured_registry, repository, cache_dir):
    sample = secured_registry.push_sample(repository)

    with open_cache(cache_dir) as cache:
        assert_unauthorized(cache, sample.reference())


def test_a_registry_token_is_sent_in_place_of_a_docker_config(
    secured_registry, repository, cache_dir, tmp_path
):
    sample = secured_registry.push_sample(repository)
    auth_file = write_auth_file(tmp_path, secured_registry.host, SECURED_USER, SECURED_PASSWORD)
    # The secured registry knows Basic auth only, so it refuses any bearer token.
    tokens = {secured_registry.host: "a-token-it-does-not-know"}

    with open_cache(cache_dir, auth_file=auth_file, registry_tokens=tokens) as cache:
        assert_unauthorized(cache, sample.reference())


def test_credentials_and_a_token_for_one_registry_are_refused(cache_dir):
    with pytest.raises(InvalidArgumentError, match="r.example"):
        Cache(
            cache_dir,
            credentials={"r.example": ("ci", "s3cret")},
            registry_tokens={"r.example": "token"},
        )


def test_credentials_that_are_not_a_pair_are_refused_without_showing_them(cache_dir):
    with pytest.raises(InvalidArgumentError) as raised:
        Cache(cache_dir, credentials={"r.example": "ci:s3cret"})

    assert "r.example" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_private_image_is_refused_to_a_handle_without_credentials(
    secured_registry, repository, cache_dir
):
    sample = secured_registry.push_sample(repository)
    credentials = right_credentials(secured_registry)
    with open_cache(cache_dir, credentials=credentials) as authorised:
        authorised.fetch(sample.reference())

        with open_cache(cache_dir) as anonymous:
            before = len(secured_registry.requests_for(repository))
            with pytest.raises(UnauthorizedError):
                anonymous.fetch(sample.reference())
            refused = secured_registry.requests_for(repository)[before:]

        again = authorised.fetch(sample.reference())

    assert refused and all(request.status != 200 for request in refused), refused
    assert [layer.cache for layer in again.layers] == ["hit", "hit"]
    assert_sample_files(again, sample)


def test_credentials_from_an_auth_file(secured_registry, repository, cache_dir, tmp_path):
    sample = secured_registry.push_sample(repository)
    auth_file = write_auth_file(tmp_path, secured_registry.host, SECURED_USER, SECURED_PASSWORD)

    # The auth file is read even though the environment's Docker config is not.
    with open_cache(cache_dir, auth_file=auth_file) as cache:
        image = cache.fetch(sample.reference())

    assert_sample_files(image, sample)


def test_a_missing_auth_file_fails_open(cache_dir, tmp_path):
    missing = tmp_path / "config.json"

    with pytest.raises(InvalidArgumentError, match=str(missing)):
        Cache(cache_dir, auth_file=missing)


def test_a_ca_file_that_is_not_pem_fails_open(cache_dir, tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")

    with pytest.raises(InvalidArgumentError):
        Cache(cache_dir, ca_files=[bogus])


def test_a_dead_mirror_is_skipped_for_the_origin(registry, sample, repository, cache_dir):
    dead = f"http://127.0.0.1:{closed_port()}"

    with open_cache(cache_dir, mirrors={registry.host: [dead]}) as cache:
        image = cache.fetch(sample.reference())

    assert_sample_files(image, sample)
    served = registry.requests_for(repository)
    assert any(request.status == 200 for request in served), served


def test_a_mirror_serves_when_the_origin_is_down(registry, sample, repository, cache_dir):
    origin = f"127.0.0.1:{closed_port()}"

    with open_cache(cache_dir, mirrors={origin: [f"http://{registry.host}"]}) as cache:
        image = cache.fetch(f"{origin}/{repository}:1.0.0")

    assert_sample_files(image, sample)


def test_a_digest_only_mirror_is_not_asked_for_a_tag(registry, sample, repository, cache_dir):
    origin = f"127.0.0.1:{closed_port()}"
    mirrors = {origin: [f"http://{registry.host},digest-only"]}
    before = len(registry.requests_for(repository))

    with open_cache(cache_dir, mirrors=mirrors) as cache:
        with pytest.raises(OciCacheError) as raised:
            cache.fetch(f"{origin}/{repository}:1.0.0")
        asked = registry.requests_for(repository)[before:]
        image = cache.fetch(f"{origin}/{repository}@{sample.index_digest}")

    assert "1.0.0" in str(raised.value)
    assert not [request for request in asked if request.path.endswith("/manifests/1.0.0")]
    assert_sample_files(image, sample)


@pytest.mark.parametrize("first", ["plain", "secured"])
def test_mirrors_are_tried_in_the_order_given(secured_pair, repository, tmp_path, first):
    plain, secured = secured_pair
    sample = plain.push_sample(repository)
    origin = f"127.0.0.1:{closed_port()}"
    urls = {"plain": f"http://{plain.host}", "secured": f"http://{secured.host}"}
    second = "secured" if first == "plain" else "plain"
    logs = {"plain": plain, "secured": secured}
    before = {name: len(logs[name].requests_for(repository)) for name in logs}

    # Both mirrors serve the same storage; the secured one wants its credentials.
    mirrors = {origin: [urls[first], urls[second]]}
    with open_cache(tmp_path, mirrors=mirrors, credentials=right_credentials(secured)) as cache:
        cache.fetch(f"{origin}/{repository}@{sample.index_digest}")

    sent = {name: logs[name].requests_for(repository)[before[name] :] for name in logs}
    assert any(request.status == 200 for request in sent[first]), sent
    assert sent[second] == []


@pytest.mark.parametrize(
    "registry_name, url",
    [("r.example", "ftp://x"), ("r.example", "not a url"), ("", "http://mirror.example")],
)
def test_a_malformed_mirror_raises_invalid_argument_error(cache_dir, registry_name, url):
    with pytest.raises(InvalidArgumentError):
        Cache(cache_dir, mirrors={registry_name: [url]})


def test_mirrors_and_ca_files_given_as_one_string_are_type_errors(cache_dir):
    with pytest.raises(TypeError, match="mirrors"):
        Cache(cache_dir, mirrors={"r.example": "http://mirror.example"})
    with pytest.raises(TypeError, match="ca_files"):
        Cache(cache_dir, ca_files="/etc/ssl/ca.pem")


def test_an_invalid_docker_auth_config_fails_open_unless_turned_off(cache_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_AUTH_CONFIG", "{not json")

    with pytest.raises(InvalidArgumentError, match="DOCKER_AUTH_CONFIG"):
        Cache(cache_dir)
    with Cache(cache_dir, docker_config=False) as cache:
        assert not cache.closed


def write_auth_file(directory: Path, host: str, user: str, password: str) -> Path:
    """A Docker config.json giving `user` and `password` for `host`."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path
