"""A throw-away PKI for the test registries, made with `cryptography`.

`Pki(directory)` writes, once:
  ca.crt / ca.key            the test CA (EC P-256)
  server.crt / server.key    127.0.0.1, ::1 and localhost, signed by the CA
  client.cert / client.key   a TLS client certificate signed by the CA
  token.crt / token.key      a self-signed RSA-2048 certificate that signs registry tokens
  certs.d/                   containers' certs.d layout for `--cert-dir`: ca.crt only
  certs.d-client/            ca.crt + client.cert + client.key
Generate it once per session (see fixtures.pki); it takes ~0.1 s.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "oci-fs tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """Certificates for the registries of one test session. Paths are attributes."""

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        self._not_before, self._not_after = now, now + datetime.timedelta(days=2)

        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = self._cert(_name("oci-fs test CA"), self.ca_key.public_key(), self.ca_key,
                                  _name("oci-fs test CA"), ca=True)
        self.ca_cert_path = self._write("ca.crt", _pem_cert(self.ca_cert))
        self._write("ca.key", _pem_key(self.ca_key))

        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.DNSName("localhost")])
        cert = self._cert(_name("127.0.0.1"), key.public_key(), self.ca_key, self.ca_cert.subject,
                          san=san, eku=ExtendedKeyUsageOID.SERVER_AUTH)
        self.server_cert_path = self._write("server.crt", _pem_cert(cert))
        self.server_key_path = self._write("server.key", _pem_key(key))

        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._cert(_name("oci-fs test client"), key.public_key(), self.ca_key,
                          self.ca_cert.subject, eku=ExtendedKeyUsageOID.CLIENT_AUTH)
        self.client_cert_path = self._write("client.cert", _pem_cert(cert))
        self.client_key_path = self._write("client.key", _pem_key(key))

        self.token_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.token_cert = self._cert(_name("oci-fs test token signer"), self.token_key.public_key(),
                                     self.token_key, _name("oci-fs test token signer"), ca=True)
        self.token_cert_path = self._write("token.crt", _pem_cert(self.token_cert))
        self._write("token.key", _pem_key(self.token_key))

        # containers' certs.d layout: what `--cert-dir` expects.
        self.cert_dir = self.dir / "certs.d"
        self.cert_dir.mkdir(exist_ok=True)
        shutil.copy(self.ca_cert_path, self.cert_dir / "ca.crt")
        self.client_cert_dir = self.dir / "certs.d-client"
        self.client_cert_dir.mkdir(exist_ok=True)
        for src, dst in ((self.ca_cert_path, "ca.crt"), (self.client_cert_path, "client.cert"),
                         (self.client_key_path, "client.key")):
            shutil.copy(src, self.client_cert_dir / dst)

    @property
    def token_cert_der(self) -> bytes:
        return self.token_cert.public_bytes(serialization.Encoding.DER)

    def _write(self, name: str, data: bytes) -> Path:
        p = self.dir / name
        p.write_bytes(data)
        if name.endswith(".key"):
            p.chmod(0o600)
        return p

    def _cert(self, subject, public_key, signing_key, issuer, ca=False, san=None, eku=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(self._not_before).not_valid_after(self._not_after)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=not ca and
                                          isinstance(public_key, rsa.RSAPublicKey),
                                          content_commitment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        if san is not None:
            b = b.add_extension(san, critical=False)
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        return b.sign(signing_key, hashes.SHA256())
