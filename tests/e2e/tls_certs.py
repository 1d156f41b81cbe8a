"""Certificates made by the tests (the `cryptography` package): a CA, site certificates signed by
it for names and 127.0.0.1, client certificates, and keys in every form dragoman reads."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    cert: Path
    key: Path
    der: bytes


class Authority:
    """A CA that writes what it signs under `folder`."""

    def __init__(self, folder: Path, name: str = "dragoman test CA"):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = folder / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (what httpx's `verify=` takes)."""
        return ssl.create_default_context(cafile=str(self.path))

    def issue(
        self,
        stem: str,
        names: tuple[str, ...] = ("localhost",),
        *,
        key_type: str = "ec",
        key_format: str = "pkcs8",
        password: bytes | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        client: bool = False,
        subject: list[tuple] | None = None,
        chain: bool = True,
    ) -> Issued:
        """A certificate for `names` (and 127.0.0.1, ::1), its key written as asked.

        key_type: ec (P-256) or rsa; key_format: pkcs8, pkcs1 (RSA) or sec1 (EC), or legacy
        (OpenSSL's encrypted PKCS#1/SEC1 with DEK-Info, needs a password)."""
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if key_type == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        attrs = subject or [(NameOID.COMMON_NAME, names[0] if names else stem)]
        name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - DAY)
            .not_valid_after(not_after or NOW + 10 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
        )
        if not client:
            alt = [x509.DNSName(n) for n in names]
            alt += [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = self.folder / f"{stem}.crt"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if chain:
            pem += self.cert.public_bytes(serialization.Encoding.PEM)
        cert_path.write_bytes(pem)
        key_path = self.folder / f"{stem}.key"
        key_path.write_bytes(write_key(key, key_format, password))
        return Issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


def write_key(key, key_format: str, password: bytes | None) -> bytes:
    if key_format == "legacy":
        assert password
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(password),
        )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    fmt = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
        "sec1": serialization.PrivateFormat.TraditionalOpenSSL,
    }[key_format]
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)
