"""Docker credential helpers (docs/cli.md, --authfile): an auth file's
`credHelpers` entry for the registry, else its `credsStore`, names a program
`docker-credential-NAME` that oci-fs runs with `get`, the server URL on stdin,
reading {"ServerURL", "Username", "Secret"} from stdout. The test ships such
a helper as a shell script; the secret never reaches argv, logs or errors.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from support import images
from support.processes import assert_secret_absent

DISK = b"a disk behind a credential helper\n" * 3000

HELPER = """#!/bin/sh
# docker-credential-ocifstest: knows one server; logs what it was asked.
read server
echo "$server $*" >> "$(dirname "$0")/asked.log"
if [ "$server" = "{host}" ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\\n' "$server"
else
  echo "credentials not found in native keychain"
  exit 1
fi
"""


@pytest.fixture
def helper(workdir, htpasswd_registry):
    user, secret = htpasswd_registry.creds
    bindir = workdir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / "docker-credential-ocifstest"
    path.write_text(HELPER.format(host=htpasswd_registry.host, user=user, secret=secret))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bindir


def _env(helper):
    return {"PATH": f"{helper}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_a_credential_helper_supplies_the_registry_credentials(ocifs, htpasswd_registry, helper, repo, workdir,
                                                               key):
    reg = htpasswd_registry
    img = images.containerdisk(DISK, "gzip")
    images.push(reg, repo, "v1", img)
    config = workdir / "config.json"
    doc = {"credHelpers": {reg.host: "ocifstest"}} if key == "credHelpers" else {"credsStore": "ocifstest"}
    config.write_text(json.dumps(doc))
    res = ocifs("cat", "--log-level", "trace", "--authfile", config, "--cert-dir", reg.cert_dir,
                reg.ref(repo, "v1"), "/disk/disk.img", env=_env(helper))
    assert res.stdout == DISK
    assert (helper / "asked.log").read_text().splitlines()[0] == f"{reg.host} get"
    assert_secret_absent(reg.creds[1], [res.stderr])


def test_a_helper_without_credentials_leaves_the_registry_refusing(ocifs, htpasswd_registry, helper, repo, workdir):
    reg = htpasswd_registry
    images.push(reg, repo, "v1", images.containerdisk(DISK, "gzip"))
    config = workdir / "config.json"
    config.write_text(json.dumps({"credHelpers": {reg.host: "ocifstest"}}))
    (helper / "docker-credential-ocifstest").write_text("#!/bin/sh\necho 'credentials not found'; exit 1\n")
    res = ocifs("inspect", "--authfile", config, "--cert-dir", reg.cert_dir, reg.ref(repo, "v1"),
                env=_env(helper), check=False)
    assert res.returncode == 1
    assert "401" in res.stderr or "credentials" in res.stderr.lower(), res.stderr
