"""Shared fixtures: a real registry from the project's test bed, sample images, a cache.

The test bed is the Rust example `testbed` of the repository (built with `cargo build
--examples` when missing): `testbed serve` runs docker-registry on a loopback port until its
standard input closes, and `testbed push-sample` pushes a sample step image to it. With
`--basic-auth USER:PASSWORD` it also runs a registry on the same storage that asks for those
credentials.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from oci_cache import Cache

REPO_DIR = Path(__file__).resolve().parents[3]
TESTBED = REPO_DIR / "target" / "debug" / "examples" / "testbed"

# The access log line is written after the response is sent: reread the log until its length
# holds still for one interval.
LOG_SETTLE_INTERVAL = 0.02
LOG_SETTLE_LIMIT = 0.2

# `127.0.0.1 - - [date] "GET /v2/steps/x/manifests/1.0.0 HTTP/1.1" 200 ...`
ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) '
)

#: The Basic credentials the secured registry accepts.
SECURED_USER, SECURED_PASSWORD = "ci", "s3cret"


@dataclass(frozen=True)
class Request:
    """One request the registry served, from its access log."""

    method: str
    path: str
    status: int


@dataclass(frozen=True)
class Sample:
    """A sample step image pushed by `testbed push-sample`."""

    #: `HOST/REPOSITORY`, the reference without a tag.
    repository: str
    tags: list[str]
    index_digest: str
    manifest_digest: str
    #: The host platform's layers, base first: `{"digest", "size"}`.
    layers: list[dict]

    def reference(self, tag: str = "1.0.0") -> str:
        """`HOST/REPOSITORY:tag`."""
        return f"{self.repository}:{tag}"


class Registry:
    """A running registry of `testbed serve`: where it listens, and what it has served.

    A registry that wants credentials takes its pushes through `push_host`, the plain registry
    on the same storage; the samples pushed name this registry all the same.
    """

    def __init__(self, host: str, log: Path, push_host: Optional[str] = None) -> None:
        self.host = host
        self.log = log
        self.push_host = push_host or host

    def push_sample(
        self,
        repository: str,
        tags: Sequence[str] = ("1.0.0", "latest"),
        large_mib: int = 0,
        message: Optional[str] = None,
    ) -> Sample:
        """Push the sample step image to `repository` under `tags`."""
        command = [str(TESTBED), "push-sample", "--registry", self.push_host]
        command += ["--repository", repository]
        for tag in tags:
            command += ["--tag", tag]
        if large_mib:
            command += ["--large-mib", str(large_mib)]
        if message is not None:
            command += ["--message", message]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        pushed = Sample(**json.loads(done.stdout))
        return dataclasses.replace(pushed, repository=f"{self.host}/{repository}")

    def requests_for(self, repository: str) -> list[Request]:
        """The requests under `/v2/<repository>/` served so far, in order."""
        prefix = f"/v2/{repository}/"
        return [request for request in self._settled_log() if request.path.startswith(prefix)]

    def _settled_log(self) -> list[Request]:
        deadline = time.monotonic() + LOG_SETTLE_LIMIT
        requests = self._read_log()
        while True:
            time.sleep(LOG_SETTLE_INTERVAL)
            again = self._read_log()
            if len(again) == len(requests) or time.monotonic() >= deadline:
                return again
            requests = again

    def _read_log(self) -> list[Request]:
        requests = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = ACCESS_LINE.match(line)
            if match:
                requests.append(
                    Request(match["method"], match["path"].split("?")[0], int(match["status"]))
                )
        return requests


@pytest.fixture(scope="session")
def testbed() -> Path:
    """The test bed binary, built if missing."""
    if not TESTBED.is_file():
        subprocess.run(["cargo", "build", "--examples"], cwd=REPO_DIR, check=True)
    return TESTBED


@pytest.fixture(scope="session")
def registry(testbed: Path) -> Iterator[Registry]:
    """A docker-registry on loopback for the whole session."""
    with serve(testbed) as started:
        yield Registry(started["host"], Path(started["log"]))


@pytest.fixture(scope="session")
def secured_pair(testbed: Path) -> Iterator[tuple[Registry, Registry]]:
    """Two docker-registries on one storage for the whole session: (plain, secured). The
    secured one asks for SECURED_USER's Basic credentials (plain HTTP) and takes its pushes
    through the plain one."""
    with serve(testbed, "--basic-auth", f"{SECURED_USER}:{SECURED_PASSWORD}") as started:
        plain = Registry(started["host"], Path(started["log"]))
        yield plain, Registry(started["secured_host"], Path(started["secured_log"]), plain.host)


@pytest.fixture
def secured_registry(secured_pair: tuple[Registry, Registry]) -> Registry:
    """The registry that asks for SECURED_USER's credentials."""
    return secured_pair[1]


@contextmanager
def serve(testbed: Path, *args: str) -> Iterator[dict]:
    """Run `testbed serve ARGS` and give the JSON line it printed; stop it on exit."""
    process = subprocess.Popen(
        [str(testbed), "serve", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"testbed serve exited without a line (status {process.wait()})")
        yield json.loads(line)
    finally:
        # Closing its standard input is the test bed's signal to stop the registry.
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture
def repository(request: pytest.FixtureRequest) -> str:
    """A repository name of this test's own, so that its requests can be counted apart."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"steps/{name}"


@pytest.fixture
def sample(registry: Registry, repository: str) -> Sample:
    """The sample step image under `1.0.0` and `latest` in this test's repository."""
    return registry.push_sample(repository)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty cache directory of this test's own."""
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_dir: Path) -> Iterator[Cache]:
    """An open cache in `cache_dir`, closed after the test."""
    with Cache(cache_dir) as opened:
        yield opened
