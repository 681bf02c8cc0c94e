"""helpers.tls: the certificates chapter 14 makes at run time.

They must pass Python's stricter verification (VERIFY_X509_STRICT, on by default from Python
3.13, checked here with this Python's ssl and, where it is installed, with Python 3.13 itself),
be refused where they are broken on purpose, and live only in memory and in one temporary
folder that is removed.
"""

import contextlib
import glob
import os
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from helpers import tls

ROOT = Path(__file__).resolve().parent.parent
STRICT = ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN  # Python 3.13's defaults


@pytest.fixture(scope="module")
def pki():
    pki = tls.pki()
    yield pki
    pki.cleanup()


def ext(identity, kind):
    return identity.cert.extensions.get_extension_for_class(kind)


# -- what is in the certificates ------------------------------------------------------------


def test_the_set_is_made_once_per_process(pki):
    assert tls.pki() is pki
    assert [i.name for i in pki] == list(tls.PKI.NAMES)


def test_cas_have_what_strict_verifiers_require(pki):
    for ca in (pki.ca, pki.rogue_ca):
        basic = ext(ca, x509.BasicConstraints)
        assert basic.critical and basic.value.ca
        usage = ext(ca, x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        ski = ext(ca, x509.SubjectKeyIdentifier).value
        assert ext(ca, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
        assert ca.cert.issuer == ca.cert.subject


def test_leaves_link_to_their_issuer_and_say_what_they_are_for(pki):
    for leaf, issuer in [(pki.server, pki.ca), (pki.client, pki.ca), (pki.expired, pki.ca),
                         (pki.rogue_server, pki.rogue_ca), (pki.rogue_client, pki.rogue_ca)]:
        assert leaf.cert.issuer == issuer.cert.subject
        assert ext(leaf, x509.BasicConstraints).critical
        assert not ext(leaf, x509.BasicConstraints).value.ca
        aki = ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
        assert aki == ext(issuer, x509.SubjectKeyIdentifier).value.digest
        ext(leaf, x509.SubjectKeyIdentifier)
    assert pki.server.names == ["DNS:localhost", "IP:127.0.0.1"]
    assert pki.client.names == []
    with pytest.raises(x509.ExtensionNotFound):
        ext(pki.no_aki, x509.AuthorityKeyIdentifier)


def test_keys_are_ec_p256(pki):
    from cryptography.hazmat.primitives.asymmetric import ec

    for identity in pki:
        assert isinstance(identity.key.curve, ec.SECP256R1)


def test_describe_has_no_dates_serials_or_keys(pki):
    lines = pki.describe().splitlines()
    assert lines[1] == ("server        | CN=localhost | issued by Notebook Test CA |"
                        " DNS:localhost IP:127.0.0.1 | for serverAuth | valid for 7 days")
    assert lines[2].endswith("| for clientAuth | valid for 7 days")
    assert lines[3].endswith("| expired 1 day ago")
    assert lines[0].endswith("| CA | valid for 30 days")
    assert len(lines) == len(tls.PKI.NAMES)


def test_issue_refuses_an_unknown_usage(pki):
    with pytest.raises(ValueError, match="usage must be 'server' or 'client'"):
        tls.issue(pki.ca, "x", name="x", usage="email")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyOpenSSL 26, from Twisted's code
def test_twisted_loads_them(pki):
    from twisted.internet.ssl import Certificate, PrivateCertificate

    assert Certificate.loadPEM(pki.ca.cert_pem).getSubject().commonName == b"Notebook Test CA"
    server = PrivateCertificate.loadPEM(pki.server.pem)
    assert server.getSubject().commonName == b"localhost"
    server.options(Certificate.loadPEM(pki.ca.cert_pem)).getContext()


# -- verification with this Python's ssl, strict -----------------------------------------


def handshake(pki, server, hostname="localhost", client=None, flags=STRICT):
    """A TLS handshake in memory between stdlib contexts: the server presents `server`
    (and requires a client certificate from the CA if `client` is given), the client
    trusts the chapter's CA only, with `flags`. Returns None, or the client's error."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.path(f"{server}.pem"), pki.path(f"{server}.key"))
    client_ctx = ssl.create_default_context(cadata=pki.ca.cert_pem.decode())
    # exactly `flags` of the strict ones (Python 3.13's default context sets STRICT itself)
    client_ctx.verify_flags = (client_ctx.verify_flags & ~STRICT) | flags
    if client is not None:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(cadata=pki.ca.cert_pem.decode())
        server_ctx.verify_flags = (server_ctx.verify_flags & ~STRICT) | flags
        client_ctx.load_cert_chain(pki.path(f"{client}.pem"), pki.path(f"{client}.key"))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    tls_server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", tls_client), ("server", tls_server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as e:
                    return f"{name}: {getattr(e, 'verify_message', None) or e.reason}"
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    if client is not None:  # TLS 1.3: the server's verdict arrives with the first read
        tls_client.write(b"x")
        s_in.write(c_out.read())
        try:
            tls_server.read(1)
        except ssl.SSLError as e:
            return f"server: {getattr(e, 'verify_message', None) or e.reason}"
    assert all(done.values()), done
    return None


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_the_server_certificate_passes_strict_verification(pki, hostname):
    assert handshake(pki, "server", hostname) is None


def test_the_client_certificate_passes_strict_verification(pki):
    assert handshake(pki, "server", client="client") is None


@pytest.mark.parametrize(("server", "hostname", "client", "error"), [
    ("server", "bank.example", None,
     "client: Hostname mismatch, certificate is not valid for 'bank.example'."),
    ("expired", "localhost", None, "client: certificate has expired"),
    ("rogue_server", "localhost", None, "client: unable to get local issuer certificate"),
    ("no_aki", "localhost", None, "client: Missing Authority Key Identifier"),
    ("server", "localhost", "rogue_client", "server: unable to get local issuer certificate"),
])
def test_the_broken_ones_are_refused_for_their_reason(pki, server, hostname, client, error):
    assert handshake(pki, server, hostname, client) == error


def test_no_aki_passes_without_the_strict_flag(pki):
    assert handshake(pki, "no_aki", flags=0) is None


def python313():
    """A Python 3.13 interpreter that runs (pyenv's, or python3.13 on PATH), or None."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python")))
    candidates += [shutil.which("python3.13")] if shutil.which("python3.13") else []
    for python in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                                     capture_output=True, text=True, timeout=30).stdout
            if version.strip() == "(3, 13)":
                return python
    return None


CHECK_313 = textwrap.dedent("""
    import ssl, sys
    folder = sys.argv[1]
    assert sys.version_info[:2] == (3, 13), sys.version
    def handshake(server, client=None):
        s = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        s.load_cert_chain(f"{folder}/{server}.pem", f"{folder}/{server}.key")
        c = ssl.create_default_context(cafile=f"{folder}/ca.pem")  # 3.13: strict by default
        assert c.verify_flags & ssl.VERIFY_X509_STRICT
        if client:
            s.verify_mode = ssl.CERT_REQUIRED
            s.load_verify_locations(cafile=f"{folder}/ca.pem")
            c.load_cert_chain(f"{folder}/{client}.pem", f"{folder}/{client}.key")
        bios = [ssl.MemoryBIO() for _ in range(4)]
        cl = c.wrap_bio(bios[0], bios[1], server_hostname="localhost")
        sv = s.wrap_bio(bios[2], bios[3], server_side=True)
        for _ in range(10):
            for side in (cl, sv):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as e:
                    return getattr(e, "verify_message", None) or e.reason
            bios[2].write(bios[1].read())
            bios[0].write(bios[3].read())
        if client:
            cl.write(b"x")
            bios[2].write(bios[1].read())
            try:
                sv.read(1)
            except ssl.SSLError as e:
                return e.reason
        return "ok"
    print(handshake("server"), handshake("server", "client"), handshake("no_aki"), sep="|")
""")


def test_python_313_accepts_them_with_its_default_verification(pki):
    python = python313()
    if python is None:
        pytest.skip("no Python 3.13 on this machine")
    result = subprocess.run([python, "-c", CHECK_313, str(pki.folder)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok|ok|Missing Authority Key Identifier"


# -- files: one temporary folder, removed ------------------------------------------------


def test_the_folder_is_private_holds_every_file_and_sits_in_the_temp_dir(pki):
    folder = pki.folder
    assert folder.parent == Path(tempfile.gettempdir())
    assert folder.name.startswith(f"{tls.PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{n}.{kind}" for n in tls.PKI.NAMES for kind in ("pem", "key"))
    assert stat.S_IMODE((folder / "server.key").stat().st_mode) == 0o600
    assert pki.path("ca.pem").read_bytes() == pki.ca.cert_pem
    assert pki.path("client.key").read_bytes() == pki.client.key_pem
    with pytest.raises(FileNotFoundError, match="no 'nope.pem'"):
        pki.path("nope.pem")


def test_cleanup_removes_it_and_it_comes_back_with_the_same_keys(pki):
    first = pki.folder
    assert first.name in tls.leftovers()
    pki.cleanup()
    assert not first.exists() and tls.leftovers() == []
    again = pki.path("server.key")
    assert again.parent != first and again.read_bytes() == pki.server.key_pem
    tls.cleanup()
    assert not again.parent.exists() and tls.leftovers() == []


def test_the_folder_is_removed_when_the_process_exits():
    code = "from helpers import tls; print(tls.pki().folder)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    folder = Path(result.stdout.strip())
    assert folder.name.startswith(tls.PREFIX), result.stderr
    assert not folder.exists()


# -- from a terminal ---------------------------------------------------------------------


def test_live_folders_are_those_of_running_processes_with_certificates(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=30).stdout.strip()
    for pid, has_ca in [(os.getpid(), True), (dead, True), (os.getpid(), False)]:
        folder = Path(tempfile.mkdtemp(prefix=f"{tls.PREFIX}{pid}-", dir=tmp_path))
        if has_ca:
            (folder / "ca.pem").write_text("x")
    live = tls.live_folders(tmp_path)
    assert [f.name.split("-")[3] for f in live] == [str(os.getpid())]


def test_the_command_prints_the_folder_and_says_when_there_is_none(pki, tmp_path):
    folder = pki.folder
    result = subprocess.run([sys.executable, "-m", "helpers.tls"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    printed = Path(result.stdout.strip())  # the newest live folder: ours, or a running kernel's
    assert result.returncode == 0 and printed.parent == Path(tempfile.gettempdir())
    assert printed.name.startswith(tls.PREFIX) and folder in tls.live_folders()
    empty = subprocess.run([sys.executable, "-m", "helpers.tls"], cwd=ROOT, capture_output=True,
                           text=True, timeout=30, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert empty.returncode == 1 and "Run chapter 14" in empty.stderr


def test_folders_of_processes_that_are_gone_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=30).stdout.strip()
    gone = Path(tempfile.mkdtemp(prefix=f"{tls.PREFIX}{dead}-", dir=tmp_path))
    (gone / "server.key").write_text("a killed kernel's key")
    ours = Path(tempfile.mkdtemp(prefix=f"{tls.PREFIX}{os.getpid()}-", dir=tmp_path))
    assert tls.remove_stale(tmp_path) == [gone.name]
    assert not gone.exists() and ours.exists()


def test_the_command_chooses_a_kernel_by_its_process_id(pki):
    folder = pki.folder
    chosen = subprocess.run([sys.executable, "-m", "helpers.tls", str(os.getpid())], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert chosen.returncode == 0 and Path(chosen.stdout.strip()) == folder
    other = subprocess.run([sys.executable, "-m", "helpers.tls", "1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
    assert other.returncode == 1 and "No running process 1 has certificates" in other.stderr


def test_the_command_names_the_other_kernels_when_there_are_several(pki):
    pki.folder  # noqa: B018 (made on first use)
    child = subprocess.Popen(
        [sys.executable, "-c", "from helpers import tls; print(tls.pki().folder, flush=True);"
         " import sys; sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        newest = Path(child.stdout.readline().strip())
        result = subprocess.run([sys.executable, "-m", "helpers.tls"], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert Path(result.stdout.strip()) == newest
        assert f"process {child.pid}'s" in result.stderr and str(os.getpid()) in result.stderr
    finally:
        child.communicate("", timeout=30)
