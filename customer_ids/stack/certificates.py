"""The secure stack's own certificate authority and the servers' certificate, made with
`cryptography` (no openssl scripts to keep in step).

The server certificate names `DNS:localhost` (librdkafka checks host names by default and does
not match IP SANs) and `IP:127.0.0.1` (the JVM does, for the controller connection). Kafka
reads the key and chain from one PEM file (PKCS#8, unencrypted, in a 0600 file); Redis reads
the certificate and the key from two.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest lifetime browsers and most TLS clients still accept


@dataclass(frozen=True)
class CertificateFiles:
    """Where the stack keeps its CA and the servers' certificate."""

    folder: Path
    names: tuple[str, ...] = ("localhost",)  # DNS names the server certificate carries

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def kafka_keystore(self) -> Path:
        """Key then chain in one PEM file: Kafka's ssl.keystore.type=PEM."""
        return self.folder / "kafka-keystore.pem"

    def exist(self) -> bool:
        return all(p.exists() for p in (self.ca, self.server_cert, self.server_key))

    def ensure(self) -> None:
        """Make the CA once, and a server certificate when there is none yet."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.ca.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(self.ca_key, _pkcs8(key))
            self.ca.write_bytes(_ca_certificate(key).public_bytes(serialization.Encoding.PEM))
        if not (self.server_cert.exists() and self.server_key.exists()):
            self.renew_server()

    def server_serial(self) -> int:
        return x509.load_pem_x509_certificate(self.server_cert.read_bytes()).serial_number

    def renew_server(self) -> None:
        """A new server key and certificate signed by the CA (rotation): the servers pick
        them up on their next start, or at once where they reload (README)."""
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _server_certificate(key, ca_key, ca_cert, self.names).public_bytes(
            serialization.Encoding.PEM
        )
        _write_private(self.server_key, _pkcs8(key))
        self.server_cert.write_bytes(cert + self.ca.read_bytes())
        _write_private(self.kafka_keystore, _pkcs8(key) + cert + self.ca.read_bytes())


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """A key is readable by its owner alone, from the first byte written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "customer-ids local CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: tuple[str, ...],
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(name) for name in names),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
