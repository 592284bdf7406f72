"""Certificates and SuperNode keys for a Flower deployment with TLS and SuperNode authentication.

    python -m fedxnor.train.flower_certs DIR --host 10.0.0.1 --nodes 2

writes into DIR (private keys mode 0600):

    ca.crt, ca.key           a self-signed certificate authority (give ca.crt to every SuperNode and to `flwr`)
    server.crt, server.key   the SuperLink's TLS certificate, signed by the CA, valid for --host (and 127.0.0.1, localhost)
    node<i>, node<i>.pub     SuperNode i's authentication key pair (ECDSA P-384, OpenSSH format, what flwr 1.42 reads):
                             the private key stays on the node, the public key is registered with
                             `flwr supernode register node<i>.pub <federation>`

For production use your own CA; this is for a lab or a test (tests/train/test_flower_secure.py).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _write(path: Path, data: bytes, private: bool) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_tls(directory: Path, hosts: list[str], days: int = 365) -> dict[str, Path]:
    """A CA and a server certificate for `hosts` (IP addresses or DNS names); returns the file paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedxnor federation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    names = list(dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA384()))
    paths = {n: directory / n for n in ("ca.crt", "ca.key", "server.crt", "server.key")}
    _write(paths["ca.crt"], ca.public_bytes(serialization.Encoding.PEM), False)
    _write(paths["ca.key"], _pem_key(ca_key), True)
    _write(paths["server.crt"], cert.public_bytes(serialization.Encoding.PEM), False)
    _write(paths["server.key"], _pem_key(key), True)
    return paths


def make_node_key(directory: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's authentication key pair (private, public) in OpenSSH format."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = directory / name
    public = directory / f"{name}.pub"
    _write(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                      serialization.NoEncryption()), True)
    _write(public, key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
           + b"\n", False)
    return private, public


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fedxnor.train.flower_certs", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="directory for the certificates and keys")
    p.add_argument("--host", action="append", default=[], help="the SuperLink's address (IP or DNS name); repeatable")
    p.add_argument("--nodes", type=int, default=2, help="SuperNode key pairs to make (node0, node1, ...)")
    args = p.parse_args(argv)
    if args.nodes < 0:
        p.error("--nodes must be >= 0")
    for path in make_tls(args.out, args.host or ["127.0.0.1"]).values():
        print(path)
    for i in range(args.nodes):
        for path in make_node_key(args.out, f"node{i}"):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
