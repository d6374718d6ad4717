"""pytest fixtures of the harness; tests/conftest.py imports them all.

Session scope (started once, shared by the tests of one file):
  pki               support.pki.Pki: CA, server/client/token certificates
  registry          anonymous plain-HTTP registry
  tls_registry      anonymous HTTPS registry (CA in tls_registry.cert_dir)
  htpasswd_registry HTTPS + htpasswd Basic auth, user/password in .creds
  token_registry    HTTP + token auth; anonymous pulls refused; .token_server
Function scope:
  make_registry     factory: make_registry(tls=..., auth=..., ...) -> started Registry,
                    stopped at the end of the test
  repo              a repository name unique to the test ("t/<test-name>")
  workdir           a fresh directory under the run's test root
  ocifs             support.processes.run_ocifs (skips the test if no binary is built
                    and OCIFS_BIN is unset)
"""

from __future__ import annotations

import itertools
import re

import pytest

from . import processes
from .pki import Pki
from .registry import Registry

_counter = itertools.count()


def _subdir(name: str):
    d = processes.test_root() / f"{name}-{next(_counter)}"
    d.mkdir(parents=True)
    return d


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki(_subdir("pki"))


@pytest.fixture(scope="session")
def registry():
    with Registry(_subdir("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def tls_registry(pki):
    with Registry(_subdir("registry-tls"), pki=pki, tls=True) as reg:
        yield reg


@pytest.fixture(scope="session")
def htpasswd_registry(pki):
    with Registry(_subdir("registry-htpasswd"), pki=pki, tls=True, auth="htpasswd") as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry(pki):
    with Registry(_subdir("registry-token"), pki=pki, auth="token", anonymous=False) as reg:
        yield reg


@pytest.fixture
def make_registry(pki):
    started = []

    def make(**kwargs) -> Registry:
        kwargs.setdefault("pki", pki)
        reg = Registry(_subdir("registry-fn"), **kwargs)
        started.append(reg)
        reg.start()
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def repo(request) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]
    return f"t/{name}-{next(_counter)}"


@pytest.fixture
def workdir():
    return _subdir("work")


@pytest.fixture
def ocifs():
    processes.ocifs_bin()  # raises OcifsNotBuilt, failing the test, when there is no binary
    return processes.run_ocifs


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """After fixture teardown: unmount and kill whatever a failed test left behind."""
    processes.cleanup_all()
