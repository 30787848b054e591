"""Throwaway certificates for the fake Nomad server's HTTPS tests.

``generate_tls_material(directory)`` writes, as PEM files:

* a test CA, and a server certificate it signed for ``127.0.0.1``/``::1``
  (IP SANs), ``localhost`` and ``server.global.nomad`` (DNS SANs). The last
  is Nomad's naming convention (``server.<region>.nomad``), so a test of
  ``NOMAD_TLS_SERVER_NAME`` can connect to 127.0.0.1 while verifying the
  certificate against that name;
* a client certificate signed by the same CA (``cli.global.nomad``), for
  mutual TLS (Nomad's ``verify_https_client``);
* a second, unrelated CA with a server and a client certificate of its own,
  to prove that verification rejects a certificate from the wrong CA.

Keys are ECDSA P-256 (fast to generate); certificates carry the extensions a
strict verifier (OpenSSL's ``VERIFY_X509_STRICT``, Python 3.13's default)
requires: key identifiers, critical basic constraints and key usage.
Certificates are valid from one hour ago for two days.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Nomad names its server certificates ``server.<region>.nomad``.
DEFAULT_SERVER_NAME = "server.global.nomad"
#: ... and its CLI/client certificates ``cli.<region>.nomad``.
DEFAULT_CLIENT_NAME = "cli.global.nomad"


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the PEM files written by :func:`generate_tls_material`."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: An unrelated CA: a client that trusts only this one must reject the server.
    other_ca_cert: Path
    other_ca_key: Path
    #: A server certificate for the same names, signed by the unrelated CA.
    other_server_cert: Path
    other_server_key: Path
    #: A client certificate signed by the unrelated CA (rejected under mTLS).
    other_client_cert: Path
    other_client_key: Path
    server_name: str = DEFAULT_SERVER_NAME
    client_name: str = DEFAULT_CLIENT_NAME


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "matomo-nomad tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = _dt.datetime.now(_dt.UTC)
    return builder.not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(
        now + _dt.timedelta(days=2)
    )


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    return cert, key


def _make_leaf(
    common_name: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    dns_names: list[str],
    ips: list[str],
    usages: list[x509.ObjectIdentifier],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = _validity(builder).sign(ca_key, hashes.SHA256())
    return cert, key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def generate_tls_material(
    directory: Path | str,
    *,
    server_name: str = DEFAULT_SERVER_NAME,
    client_name: str = DEFAULT_CLIENT_NAME,
) -> TLSMaterial:
    """Create the CAs and certificates described in the module docstring."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    server_usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    client_usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    server_dns = ["localhost", server_name]
    server_ips = ["127.0.0.1", "::1"]

    ca, ca_key = _make_ca("fake-nomad test CA")
    server, server_key = _make_leaf(
        server_name, ca, ca_key, dns_names=server_dns, ips=server_ips, usages=server_usages
    )
    client, client_key = _make_leaf(client_name, ca, ca_key, dns_names=[client_name], ips=[], usages=client_usages)

    other_ca, other_ca_key = _make_ca("unrelated test CA")
    other_server, other_server_key = _make_leaf(
        server_name, other_ca, other_ca_key, dns_names=server_dns, ips=server_ips, usages=server_usages
    )
    other_client, other_client_key = _make_leaf(
        client_name, other_ca, other_ca_key, dns_names=[client_name], ips=[], usages=client_usages
    )

    paths = {}
    for stem, cert, key in [
        ("ca", ca, ca_key),
        ("server", server, server_key),
        ("client", client, client_key),
        ("other-ca", other_ca, other_ca_key),
        ("other-server", other_server, other_server_key),
        ("other-client", other_client, other_client_key),
    ]:
        paths[stem] = _write(directory, stem, cert, key)

    return TLSMaterial(
        directory=directory,
        ca_cert=paths["ca"][0],
        ca_key=paths["ca"][1],
        server_cert=paths["server"][0],
        server_key=paths["server"][1],
        client_cert=paths["client"][0],
        client_key=paths["client"][1],
        other_ca_cert=paths["other-ca"][0],
        other_ca_key=paths["other-ca"][1],
        other_server_cert=paths["other-server"][0],
        other_server_key=paths["other-server"][1],
        other_client_cert=paths["other-client"][0],
        other_client_key=paths["other-client"][1],
        server_name=server_name,
        client_name=client_name,
    )
