"""Certificates for the real node, signed by the test control plane's CA (read from its directory)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.kubernetes.pki import CertPair, Pki


def load_pki(ca_dir: Path, directory: Path) -> Pki:
    """A :class:`~tests.kubernetes.pki.Pki` issuing into ``directory`` with the CA in ``ca_dir`` (ca.crt, ca.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca_dir / 'ca.key'} is not the ECDSA key the test control plane makes")
    pki = Pki.__new__(Pki)  # Pki() would make a new CA; this one reuses the control plane's
    pki.directory = directory
    pki._ca_key = key
    pki._ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    pki.ca = CertPair(ca_dir / "ca.crt", ca_dir / "ca.key")
    return pki
