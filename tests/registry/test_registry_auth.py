"""TLS and authentication of `oci-fs` against a real docker-registry (docs/cli.md):
--cert-dir, --tls-verify, htpasswd Basic auth (--creds, --authfile, REGISTRY_AUTH_FILE,
the default auth files), token auth, client certificates; credentials never leak."""

from __future__ import annotations

import base64
import json

import pytest

from support import images
from support.processes import assert_secret_absent

DISK = b"a disk for the auth tests\n" * 4000


def _authfile(path, registry, user, password):
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    return path


def _push_disk(registry, repo):
    img = images.containerdisk(DISK, "gzip")
    images.push(registry, repo, "v1", img)
    return registry.ref(repo, "v1"), img


def _assert_auth_refused(res, password=None):
    assert res.returncode != 0
    msg = res.stderr.lower()
    assert any(w in msg for w in ("401", "credentials", "unauthorized", "authentication")), res.stderr
    if password:
        assert_secret_absent(password, [res.stdout, res.stderr])


@pytest.fixture
def cache(workdir):
    return ["--cache-dir", str(workdir / "cache")]


# --------------------------------------------------------------------------- TLS


def test_tls_works_with_the_ca_from_cert_dir(ocifs, tls_registry, repo, cache):
    ref, img = _push_disk(tls_registry, repo)
    doc = json.loads(ocifs("inspect", "--json", "--cert-dir", tls_registry.cert_dir, ref).text)
    assert doc["digest"] == img.digest
    assert ocifs("cat", *cache, "--cert-dir", tls_registry.cert_dir, ref, "/disk/disk.img").stdout == DISK


def test_tls_without_the_ca_fails_with_a_verification_error(ocifs, tls_registry, repo):
    ref, _ = _push_disk(tls_registry, repo)
    res = ocifs("inspect", ref, check=False)
    assert res.returncode != 0
    msg = res.stderr.lower()
    assert "certificate" in msg or "tls" in msg or "ssl" in msg, res.stderr


def test_tls_verify_false_accepts_the_unknown_certificate(ocifs, tls_registry, repo, cache):
    ref, img = _push_disk(tls_registry, repo)
    assert ocifs("cat", *cache, "--tls-verify=false", ref, "/disk/disk.img").stdout == DISK


def test_a_client_certificate_from_cert_dir_is_presented(ocifs, make_registry, repo, pki):
    reg = make_registry(tls=True, client_cert=True)
    ref, img = _push_disk(reg, repo)
    doc = json.loads(ocifs("inspect", "--json", "--cert-dir", reg.cert_dir, ref).text)
    assert doc["digest"] == img.digest
    res = ocifs("inspect", "--cert-dir", pki.cert_dir, ref, check=False)  # CA only, no client cert
    assert res.returncode != 0


# --------------------------------------------------------------------------- htpasswd


def test_htpasswd_auth_works_with_creds(ocifs, htpasswd_registry, repo, cache):
    reg = htpasswd_registry
    ref, img = _push_disk(reg, repo)
    user, password = reg.creds
    res = ocifs("cat", *cache, "--cert-dir", reg.cert_dir, "--creds", f"{user}:{password}", ref,
                "/disk/disk.img")
    assert res.stdout == DISK
    assert_secret_absent(password, [res.stderr])


def test_htpasswd_auth_works_with_an_authfile(ocifs, htpasswd_registry, repo, workdir):
    reg = htpasswd_registry
    ref, img = _push_disk(reg, repo)
    path = _authfile(workdir / "auth.json", reg, *reg.creds)
    doc = json.loads(ocifs("inspect", "--json", "--cert-dir", reg.cert_dir, "--authfile", path, ref).text)
    assert doc["digest"] == img.digest


def test_htpasswd_auth_works_with_registry_auth_file(ocifs, htpasswd_registry, repo, workdir):
    reg = htpasswd_registry
    ref, img = _push_disk(reg, repo)
    path = _authfile(workdir / "auth.json", reg, *reg.creds)
    res = ocifs("inspect", "--json", "--cert-dir", reg.cert_dir, ref,
                env={"REGISTRY_AUTH_FILE": str(path)})
    assert json.loads(res.text)["digest"] == img.digest


@pytest.mark.parametrize("where", ["xdg_runtime", "docker_config"])
def test_htpasswd_auth_reads_the_default_auth_files(ocifs, htpasswd_registry, repo, workdir, where):
    reg = htpasswd_registry
    ref, img = _push_disk(reg, repo)
    home, run = workdir / "home", workdir / "run"
    home.mkdir()
    run.mkdir()
    target = run / "containers/auth.json" if where == "xdg_runtime" else home / ".docker/config.json"
    _authfile(target, reg, *reg.creds)
    res = ocifs("inspect", "--json", "--cert-dir", reg.cert_dir, ref,
                env={"HOME": str(home), "XDG_RUNTIME_DIR": str(run)})
    assert json.loads(res.text)["digest"] == img.digest


def test_htpasswd_without_credentials_is_refused(ocifs, htpasswd_registry, repo):
    ref, _ = _push_disk(htpasswd_registry, repo)
    _assert_auth_refused(ocifs("inspect", "--cert-dir", htpasswd_registry.cert_dir, ref, check=False))


def test_a_wrong_htpasswd_password_fails_without_echoing_it(ocifs, htpasswd_registry, repo):
    reg = htpasswd_registry
    ref, _ = _push_disk(reg, repo)
    wrong = "Wr0ng-Passw0rd-xyz"
    res = ocifs("inspect", "--cert-dir", reg.cert_dir, "--creds", f"{reg.creds[0]}:{wrong}", ref,
                "--log-level", "debug", check=False)
    _assert_auth_refused(res, wrong)
    assert_secret_absent(base64.b64encode(f"{reg.creds[0]}:{wrong}".encode()).decode(), [res.stderr])


# --------------------------------------------------------------------------- token


def test_token_auth_refuses_anonymous_pulls_when_the_token_server_demands_credentials(
        ocifs, token_registry, repo):
    ref, _ = _push_disk(token_registry, repo)
    refused = len(token_registry.token_server.refused)
    _assert_auth_refused(ocifs("inspect", ref, "--tls-verify=false", check=False))
    assert len(token_registry.token_server.refused) > refused  # it did ask the token server


def test_token_auth_with_credentials_reads_the_image_and_caches_the_token(
        ocifs, token_registry, repo, cache):
    reg = token_registry
    ref, img = _push_disk(reg, repo)
    user, password = reg.creds
    before = reg.token_server.tokens_issued(user)
    gets_before = len(reg.blob_gets(repo))
    res = ocifs("cat", *cache, "--tls-verify=false", "--creds", f"{user}:{password}", ref,
                "/disk/disk.img")
    assert res.stdout == DISK
    assert len(reg.blob_gets(repo)) > gets_before
    assert reg.token_server.tokens_issued(user) - before <= 2, "a token per request?"


def test_token_auth_never_prints_the_password_or_the_token_even_at_debug_level(
        ocifs, token_registry, repo, cache):
    reg = token_registry
    ref, img = _push_disk(reg, repo)
    user, password = reg.creds
    res = ocifs("inspect", "--tls-verify=false", "--creds", f"{user}:{password}", "--log-level",
                "debug", ref)
    assert parse_digest(res.text) == img.digest
    secrets = [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
    secrets += [i.token.split(".")[2] for i in reg.token_server.issued]  # JWT signatures
    for s in secrets:
        assert_secret_absent(s, [res.stdout, res.stderr])


def test_a_wrong_token_password_fails_with_401_and_does_not_echo_it(ocifs, token_registry, repo):
    reg = token_registry
    ref, _ = _push_disk(reg, repo)
    wrong = "N0t-The-Passw0rd-42"
    res = ocifs("inspect", "--tls-verify=false", "--creds", f"{reg.creds[0]}:{wrong}",
                "--log-level", "debug", ref, check=False)
    _assert_auth_refused(res, wrong)
    assert reg.token_server.refused[-1].reason == "wrong credentials"


def parse_digest(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("Digest:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Digest line in:\n{text}")
