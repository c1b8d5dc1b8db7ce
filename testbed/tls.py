"""A private CA and server certificates made in the test, for HTTPS test servers.

Self-hosted ScyllaDB clusters serve Alternator over HTTPS with certificates from a private
CA; these helpers make such a CA and a certificate for the loopback node addresses (or
for other names, to provoke a host-name mismatch) with the `cryptography` package.
"""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _write(folder: Path, name: str, cert: x509.Certificate, key) -> Certificate:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Certificate(cert_path, key_path)


def _builder(subject: str, issuer: x509.Name | None, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))


def make_ca(folder: Path, name: str = "test-ca") -> tuple[Certificate, x509.Certificate, object]:
    """A self-signed CA: its files, certificate and private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(name, None, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return _write(folder, name, cert, key), cert, key


def make_server_certificate(folder: Path, ca: tuple[Certificate, x509.Certificate, object],
                            addresses: tuple[str, ...], name: str = "server") -> Certificate:
    """A server certificate for `addresses` (IPs or host names), signed by the CA."""
    _, ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address(a)) if a.replace(".", "").isdigit() else x509.DNSName(a)
             for a in addresses]
    cert = (_builder(addresses[0], ca_cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _write(folder, name, cert, key)
