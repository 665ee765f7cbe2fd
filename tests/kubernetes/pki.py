"""Certificates, keys and kubeconfigs of a throwaway control plane (``cryptography`` comes with ``kubernetes``).

One CA signs everything: the API server's serving certificate, and client certificates whose subject
is the identity Kubernetes sees (CN = user, O = groups). The service-account key pair signs and
verifies the tokens the API server issues. ECDSA P-256 throughout: every component accepts it and it
is quick to generate.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


class Pki:
    """A CA in ``directory`` (``ca.crt``, ``ca.key``) that issues certificates beside it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "occam-test-ca")])
        now = datetime.datetime.now(datetime.UTC)
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = CertPair(
            _write(directory / "ca.crt", self._ca_cert.public_bytes(serialization.Encoding.PEM), 0o644),
            _write(directory / "ca.key", _key_pem(self._ca_key)),
        )

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert.read_bytes()

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
    ) -> CertPair:
        """A certificate ``<name>.crt`` for ``common_name`` (client auth; server auth too when ``server``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        return CertPair(
            _write(self.directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644),
            _write(self.directory / f"{name}.key", _key_pem(key)),
        )

    def service_account_keys(self) -> CertPair:
        """The key pair that signs service-account tokens: ``sa.key`` (private) and ``sa.pub`` (public)."""
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return CertPair(
            _write(self.directory / "sa.pub", public, 0o644), _write(self.directory / "sa.key", _key_pem(key))
        )


def write_kubeconfig(
    path: Path, server: str, ca_pem: bytes | None, user: dict[str, str], namespace: str = "default"
) -> Path:
    """A kubeconfig with one cluster, user and context (JSON, which every YAML reader accepts).

    ``ca_pem`` None: the server's certificate is not verified (only for clusters set up that way).
    """
    cluster: dict[str, object] = {"server": server}
    if ca_pem is None:
        cluster["insecure-skip-tls-verify"] = True
    else:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "occam-test", "cluster": cluster}],
        "users": [{"name": "user", "user": user}],
        "contexts": [
            {"name": "occam-test", "context": {"cluster": "occam-test", "user": "user", "namespace": namespace}}
        ],
        "current-context": "occam-test",
    }
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    return path
