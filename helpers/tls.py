"""Certificates for chapter 14, made at run time: a CA, server and client certificates.

The chapter teaches TLS, not how to run a certificate authority, so this module makes the
certificates it needs with `cryptography`, in memory, once per process: `pki()` returns them.
Nothing is committed and nothing is written anywhere but one temporary folder, made the first
time a file is asked for (`PKI.path`, for tools that read files: `openssl s_client`, the
stdlib's `SSLContext.load_cert_chain`) and removed by `PKI.cleanup()` (and at exit).

Keys are EC P-256: a key takes well under a millisecond to make, where an RSA-2048 key can
take a hundred. The extensions are those that both Twisted (pyOpenSSL, service_identity) and
Python 3.13's stricter `ssl` (VERIFY_X509_STRICT on by default) accept:

- the CA: critical BasicConstraints(ca=True, path_length=0), critical KeyUsage (sign
  certificates and CRLs), SubjectKeyIdentifier, AuthorityKeyIdentifier (itself);
- each leaf: critical BasicConstraints(ca=False), critical KeyUsage(digital_signature),
  ExtendedKeyUsage (serverAuth or clientAuth), SubjectKeyIdentifier,
  AuthorityKeyIdentifier (its issuer; without it 3.13 refuses the chain with "Missing
  Authority Key Identifier"), and for servers a SubjectAlternativeName (DNS `localhost`,
  IP `127.0.0.1`): host names are checked against the SAN, never the common name.

From a terminal, `python -m helpers.tls` prints the folder of the newest live notebook's
certificates (`cd` there, then `openssl s_client -CAfile ca.pem ...`); `python -m helpers.tls
PID` that of the kernel with that process id. Folders of processes that are gone are removed
when a new one is made.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "network-notebooks-tls-"  # every folder this module makes starts with this
_folders: set[Path] = set()  # folders made by this process and not yet removed
_lock = threading.RLock()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key: `cert_pem`, `key_pem`, and `pem` (both, in the
    form Twisted's `PrivateCertificate.loadPEM` reads)."""

    name: str  # the file name stem in the PKI folder: "ca", "server", ...
    cert: object  # cryptography.x509.Certificate
    key: object = field(repr=False)  # cryptography EllipticCurvePrivateKey
    role: str = ""  # what it is for, in a few words

    @property
    def cert_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.cert.public_bytes(Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization as s

        return self.key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                                      s.NoEncryption())

    @property
    def pem(self) -> bytes:
        return self.cert_pem + self.key_pem

    @property
    def subject(self) -> str:
        return _common_name(self.cert.subject)

    @property
    def issuer(self) -> str:
        return _common_name(self.cert.issuer)

    @property
    def names(self) -> list[str]:
        """The subject alternative names, as `DNS:localhost`, `IP:127.0.0.1`."""
        from cryptography import x509

        try:
            san = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        out = [f"DNS:{n}" for n in san.value.get_values_for_type(x509.DNSName)]
        return out + [f"IP:{n}" for n in san.value.get_values_for_type(x509.IPAddress)]

    def validity(self, now: datetime.datetime | None = None) -> str:
        """"valid" or "expired", with how long, in whole days or hours (no dates)."""
        now = now or _now()
        start, end = self.cert.not_valid_before_utc, self.cert.not_valid_after_utc
        if now < start:
            return f"not valid yet (from {_span(start - now)} from now)"
        if now > end:
            return f"expired {_span(now - end)} ago"
        return f"valid for {_span(end - now)}"

    def describe(self) -> str:
        """One line: name, subject, issuer, names, usage, validity."""
        from cryptography import x509

        parts = [f"{self.name:<13}", f"CN={self.subject}", f"issued by {self.issuer}"]
        if self.names:
            parts.append(" ".join(self.names))
        try:
            eku = self.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            parts.append("for " + ",".join(_USAGES.get(u.dotted_string, u.dotted_string)
                                           for u in eku))
        except x509.ExtensionNotFound:
            basic = self.cert.extensions.get_extension_for_class(x509.BasicConstraints)
            if basic.value.ca:
                parts.append("CA")
        parts.append(self.validity())
        return " | ".join(parts)


_USAGES = {"1.3.6.1.5.5.7.3.1": "serverAuth", "1.3.6.1.5.5.7.3.2": "clientAuth"}


def _common_name(name) -> str:
    from cryptography.x509.oid import NameOID

    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else ""


def _span(delta: datetime.timedelta) -> str:
    # Rounded, so that a description made a second later says the same.
    hours = round(delta.total_seconds() / 3600)
    count, unit = (round(hours / 24), "day") if hours >= 24 else (hours, "hour")
    return f"{count} {unit}{'s' if count != 1 else ''}"


# -- making certificates --------------------------------------------------------------


def new_key():
    """A new EC P-256 private key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def make_ca(common_name: str, *, days: int = 30, name: str = "ca", role: str = "") -> Identity:
    """A self-signed certificate authority, valid from an hour ago for `days` days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = new_key()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Network Notebooks"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(name, cert, key, role or f"a certificate authority, {common_name}")


def _key_usage(*, cert_sign: bool):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def issue(ca: Identity, common_name: str, *, name: str, usage: str = "server",
          dns: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",),
          valid_from: datetime.timedelta = datetime.timedelta(hours=-1),
          valid_until: datetime.timedelta = datetime.timedelta(days=7),
          authority_key_id: bool = True, role: str = "") -> Identity:
    """A leaf certificate for `common_name`, signed by `ca`.

    usage: "server" (serverAuth, with the SAN `dns` and `ips`) or "client" (clientAuth,
    no SAN). valid_from/valid_until are offsets from now (negative: in the past).
    authority_key_id=False leaves out the AuthorityKeyIdentifier, which Python 3.13's
    default verification requires (VERIFY_X509_STRICT) and Twisted does not.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if usage not in ("server", "client"):
        raise ValueError(f"usage must be 'server' or 'client', not {usage!r}")
    key = new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH
                                              if usage == "server" else
                                              ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    if authority_key_id:
        ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False)
    if usage == "server":
        alt = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                                for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return Identity(name, cert, key, role or f"{usage} certificate for {common_name}")


# -- the chapter's set ------------------------------------------------------------------


class PKI:
    """Everything chapter 14 needs, made at once (a few milliseconds):

    ca            the chapter's certificate authority, which the clients trust
    server        CN=localhost, SAN DNS:localhost IP:127.0.0.1, serverAuth, by ca
    client        CN=alice, clientAuth, by ca (mutual TLS)
    expired       like server, but it expired a day ago
    no_aki        like server, without AuthorityKeyIdentifier (Python 3.13's ssl refuses it)
    rogue_ca      another CA, which nobody here trusts
    rogue_server  CN=localhost, like server, but by rogue_ca
    rogue_client  CN=alice, like client, but by rogue_ca
    """

    NAMES = ("ca", "server", "client", "expired", "no_aki", "rogue_ca", "rogue_server",
             "rogue_client")

    def __init__(self):
        day = datetime.timedelta(days=1)
        self.ca = make_ca("Notebook Test CA", role="the chapter's CA, trusted by its clients")
        self.server = issue(self.ca, "localhost", name="server")
        self.client = issue(self.ca, "alice", name="client", usage="client")
        self.expired = issue(self.ca, "localhost", name="expired", valid_from=-10 * day,
                             valid_until=-day, role="a server certificate that has expired")
        self.no_aki = issue(self.ca, "localhost", name="no_aki", authority_key_id=False,
                            role="a server certificate without AuthorityKeyIdentifier")
        self.rogue_ca = make_ca("Rogue CA", name="rogue_ca", role="a CA nobody here trusts")
        self.rogue_server = issue(self.rogue_ca, "localhost", name="rogue_server")
        self.rogue_client = issue(self.rogue_ca, "alice", name="rogue_client", usage="client")
        self._folder: Path | None = None

    def __iter__(self):
        return iter(getattr(self, n) for n in self.NAMES)

    def describe(self) -> str:
        """A line per certificate (no dates, serials or keys: the same on every run)."""
        return "\n".join(identity.describe() for identity in self)

    # -- files ------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        """The temporary folder with every certificate as NAME.pem and every key as
        NAME.key (made on first use; made again after `cleanup`)."""
        with _lock:
            if self._folder is None or not self._folder.exists():
                remove_stale()  # a killed kernel's keys do not stay on disk for ever
                self._folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
                _folders.add(self._folder)
                for identity in self:
                    (self._folder / f"{identity.name}.pem").write_bytes(identity.cert_pem)
                    key_file = self._folder / f"{identity.name}.key"
                    key_file.touch(mode=0o600)
                    key_file.write_bytes(identity.key_pem)
            return self._folder

    def path(self, filename: str) -> Path:
        """The path of a file in the folder: "ca.pem", "client.key", ..."""
        path = self.folder / filename
        if not path.exists():
            raise FileNotFoundError(f"no {filename!r}; there are: "
                                    f"{sorted(p.name for p in self.folder.iterdir())}")
        return path

    def cleanup(self) -> None:
        """Remove the temporary folder and everything in it (if it was made)."""
        with _lock:
            if self._folder is not None:
                _remove(self._folder)
                self._folder = None


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _folders.discard(folder)


_pki: PKI | None = None


def pki() -> PKI:
    """This process's certificates, made on first use and kept (keys stay in memory;
    the folder is made again if it was cleaned up)."""
    global _pki
    with _lock:
        if _pki is None:
            _pki = PKI()
        return _pki


def cleanup() -> None:
    """Remove every folder this process made."""
    with _lock:
        if _pki is not None:
            _pki.cleanup()
        for folder in list(_folders):
            _remove(folder)


def leftovers() -> list[str]:
    """Names of the folders this process made that are still on disk (none after
    `cleanup()`)."""
    with _lock:
        return sorted(f.name for f in _folders if f.exists())


atexit.register(cleanup)


# -- from a terminal ---------------------------------------------------------------------


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, harmless check elsewhere: trust the newest folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid(folder: Path) -> int | None:
    pid = folder.name.removeprefix(PREFIX).split("-")[0]
    return int(pid) if pid.isdigit() else None


def remove_stale(root: str | None = None) -> list[str]:
    """Remove the certificate folders of processes that are gone (a kernel killed before
    its clean-up ran); the names of those removed. Only where a process can be looked up."""
    if os.name != "posix":
        return []
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = _pid(folder)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return sorted(removed)


def live_folders(root: str | None = None) -> list[Path]:
    """Certificate folders of running processes in the temp folder, newest first."""
    found = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = _pid(folder)
        with contextlib.suppress(OSError):
            if pid is not None and _alive(pid) and (folder / "ca.pem").exists():
                found.append((folder.stat().st_mtime, folder))
    return [folder for _, folder in sorted(found, reverse=True)]


def main(argv=None) -> int:
    """Print the certificate folder of the newest live kernel, or of the kernel whose
    process id is given; with several, say on stderr which others there are."""
    args = sys.argv[1:] if argv is None else argv
    folders = live_folders()
    if args:
        folders = [f for f in folders if str(_pid(f)) == args[0]]
        if not folders:
            print(f"No running process {args[0]} has certificates on disk; without a process"
                  " id, the newest kernel's folder is printed.", file=sys.stderr)
            return 1
    if not folders:
        print("No notebook has its certificates on disk. Run chapter 14 up to its"
              " 'Try it from a terminal' cell first.", file=sys.stderr)
        return 1
    if len(folders) > 1:
        print(f"{len(folders)} kernels have certificates; this is the newest, process"
              f" {_pid(folders[0])}'s (the others: {', '.join(str(_pid(f)) for f in folders[1:])};"
              " choose one with `python -m helpers.tls PID`; a kernel's PID is `os.getpid()`"
              " in one of its cells).", file=sys.stderr)
    print(folders[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
