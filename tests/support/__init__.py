"""Test harness shared by every oci-fs integration test.

Modules:
  processes     child processes and FUSE mounts that never outlive the test run;
                `run_ocifs` and `Mount` drive the binary under test.
  pki           a throw-away CA with server, client and token-signing certificates.
  registry      a real `docker-registry` (distribution 2.8) on a free loopback port,
                optionally with TLS, htpasswd or token auth, and its request log.
  token_server  the token service distribution's `auth: token` expects.
  client        a small registry HTTP client (push, pull) that handles Basic/Bearer auth.
  images        deterministic tars, compression, OCI/Docker images and indexes,
                KubeVirt containerDisks, OCI layout directories, push.
  fixtures      pytest fixtures built from the above (imported by tests/conftest.py).

Only the standard library and `cryptography` are used.
"""
