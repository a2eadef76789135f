"""Deployment on real machines: certificates, keys and the Flower command lines.

A federation is one SuperLink (TLS on, SuperNode authentication on) and one
SuperNode per silo. ``make_certs`` writes what they need: a private CA, the
SuperLink's server certificate (SANs for the hosts SuperNodes dial), one
ECDSA P-384 key pair per SuperNode in OpenSSH format (what flwr 1.41 reads:
``flower-supernode --auth-supernode-private-key``, ``flwr supernode register``)
and the clients' shared federation key (the HMAC key for event ids, which
must never reach the SuperLink machine). The ``*_command`` functions return
the exact argv so the CLI can print or exec them and tests can run them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import secrets
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flwr.app import Message
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=E0611
from flwr.serverapp import Grid
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.run import Run

LOOPBACK = ("localhost", "127.0.0.1", "::1")  # the SuperLink's own ServerApp runtime dials it locally
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
VALID_DAYS = 365
# How soon a deployment's processes look again for a message, a reply or a missing object. At 0.2 s an
# idle loopback federation of four SuperNodes burnt 0.37 of a core polling (0.14 at 0.5 s), which slowed
# the runs it was meant to speed up on a 2-core host.
POLL_S = 0.5


@dataclass(frozen=True)
class CertPaths:
    """Where ``make_certs`` puts each file under its directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "superlink.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "superlink.key"

    @property
    def federation_key(self) -> Path:
        return self.root / "federation.key"

    def node_private(self, name: str) -> Path:
        return self.root / "supernodes" / f"{name}.key"

    def node_public(self, name: str) -> Path:
        return self.root / "supernodes" / f"{name}.pub"


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedlog"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def make_ca(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("fedlog federation CA"))
        .issuer_name(_name("fedlog federation CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    _write(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(paths.ca_key, _pem_key(key), private=True)
    return cert, key


def make_server_cert(
    paths: CertPaths, hosts: Sequence[str], ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    """The SuperLink's certificate: valid for every host name / IP SuperNodes and ``flwr`` use, plus loopback."""
    names = list(dict.fromkeys([*hosts, *LOOPBACK]))
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    _write(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(paths.server_key, _pem_key(key), private=True)


def make_node_keys(paths: CertPaths, name: str) -> None:
    """A SuperNode's P-384 key pair in OpenSSH format (the formats flwr 1.41 loads)."""
    if not NAME_RE.match(name):
        raise ValueError(f"SuperNode name {name!r}: use letters, digits, '.', '_' or '-'")
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    _write(paths.node_private(name), private, private=True)
    _write(paths.node_public(name), public + f" fedlog-{name}\n".encode(), private=False)


def make_certs(out: Path, hosts: Sequence[str], supernodes: Sequence[str], overwrite: bool = False) -> CertPaths:
    """Everything a federation needs in ``out``; refuses to replace an existing CA unless asked."""
    paths = CertPaths(Path(out))
    if paths.ca_key.exists() and not overwrite:
        raise FileExistsError(f"{paths.ca_key} exists: pass overwrite to replace the federation's CA")
    ca_cert, ca_key = make_ca(paths)
    make_server_cert(paths, hosts, ca_cert, ca_key)
    for name in supernodes:
        make_node_keys(paths, name)
    if overwrite or not paths.federation_key.exists():
        write_federation_key(paths.federation_key)
    return paths


def write_federation_key(path: Path) -> None:
    """A fresh 256-bit federation key (hex), readable by its owner only."""
    _write(path, secrets.token_hex(32).encode() + b"\n", private=True)


def superlink_command(
    certs: CertPaths | None, host: str = "0.0.0.0", port: int = 9093, database: str | None = None
) -> list[str]:
    """``flower-superlink`` with TLS and SuperNode authentication; ``certs=None`` is insecure (asked for)."""
    cmd = ["flower-superlink", "--host", host, "--port", str(port), "--disable-runtime-dependency-installation"]
    if database:
        cmd += ["--database", database]  # registered SuperNodes survive a SuperLink restart
    if certs is None:
        return [*cmd, "--insecure"]
    return [
        *cmd,
        "--ssl-ca-certfile",
        str(certs.ca_cert),
        "--ssl-certfile",
        str(certs.server_cert),
        "--ssl-keyfile",
        str(certs.server_key),
        "--enable-supernode-auth",
    ]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_config(silo: str, partition: int | None = None, extra: Mapping[str, str] | None = None) -> str:
    """``--node-config`` value: the SuperNode's own ``format=path`` silo (client_app.py reads ``silo``);
    ``partition-id`` only numbers the silo in the run records."""
    if "=" not in silo:
        raise ValueError(f"--silo expects FORMAT=PATH, got {silo!r}")
    config = f"silo={_quote(silo)}"
    if partition is not None:
        config += f" partition-id={partition}"
    for key, value in (extra or {}).items():
        config += f" {key}={_quote(value)}"
    return config


def supernode_command(
    superlink: str,
    silo: str,
    certs: CertPaths | None,
    name: str = "",
    partition: int | None = None,
    clientapp_port: int = 9094,
    private_key: Path | None = None,
    max_wait_time: float | None = None,
    extra_config: Mapping[str, str] | None = None,
) -> list[str]:
    """``flower-supernode`` for one silo: verifies the SuperLink with the CA and signs in with its key.
    Its ClientApp tasks are launched by ``launcher_command`` on the same host (``--isolation process``).
    Started through ``fedlog.forkexec supernode``, which shortens the SuperNode's fixed 3 s idle wait."""
    cmd = [
        sys.executable,
        "-m",
        "fedlog.forkexec",
        "supernode",
        "--superlink",
        superlink,
        "--node-config",
        node_config(silo, partition, extra_config),
        "--isolation",
        "process",
        "--port",
        str(clientapp_port),  # the local ClientApp runtime; one per SuperNode on a shared host
    ]
    if max_wait_time is not None:
        cmd += ["--max-wait-time", f"{max_wait_time:g}"]
    if certs is None:
        return [*cmd, "--insecure"]
    key = private_key or certs.node_private(name)
    return [*cmd, "--root-certificates", str(certs.ca_cert), "--auth-supernode-private-key", str(key)]


def launcher_command(clientapp_port: int = 9094, parent_pid: int | None = None) -> list[str]:
    """The SuperNode's ClientApp launcher (``fedlog.forkexec``): one warm process that forks per message."""
    cmd = [sys.executable, "-m", "fedlog.forkexec", "--runtime-api-address", f"127.0.0.1:{clientapp_port}"]
    return cmd if parent_pid is None else [*cmd, "--parent-pid", str(parent_pid)]


def register_command(public_key: Path, connection: str) -> list[str]:
    """Run by the federation operator (Control API): admits the SuperNode holding the matching private key."""
    return ["flwr", "supernode", "register", str(public_key), connection, "--format", "json"]


def connection_toml(name: str, address: str, certs: CertPaths | None) -> str:
    """A ``[superlink.NAME]`` block for ``$FLWR_HOME/config.toml`` (what ``flwr run . NAME`` uses)."""
    lines = [f"[superlink.{name}]", f'address = "{address}"']
    if certs is None:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{certs.ca_cert}"')
    return "\n".join(lines) + "\n"


def shell(cmd: Sequence[str]) -> str:
    return shlex.join(cmd)


# Flower's waits on a deployment's message path are fixed, with no setting: the ServerApp's grid asks
# for replies every 3 s, and a pull of a message whose objects are still being pushed (a reply the
# SuperNode is still uploading, a message the SuperNode is still fetching) retries after 1 s, then 2 s.
# A simulation's in-memory grid asks every 0.1 s. These shorten them; what is sent and computed is unchanged.


def retry_pulls_soon(cap: float | None = None) -> None:
    """The first retry of an object pull after ``POLL_S``, then doubling up to ``cap`` (Flower's 10 s by
    default, so a slow link gives up no sooner)."""
    for pull in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        pull.__kwdefaults__["initial_backoff"] = POLL_S
        if cap is not None:
            pull.__kwdefaults__["backoff_cap"] = cap


def prompt_grid(grid: Grid) -> Grid:
    """The ServerApp's grid for a deployed run (``PromptGrid``); a simulation's grid as it is."""
    from flwr.superlink.grid import HttpGrid  # imports the SuperLink's database layer: only here

    if not isinstance(grid, HttpGrid):
        return grid
    retry_pulls_soon()
    return PromptGrid(grid)


class PromptGrid(Grid):
    """A deployed run's grid: Flower's HttpGrid, except that ``send_and_receive`` asks for replies every
    ``POLL_S`` instead of every 3 s (a simulation's InMemoryGrid asks every 0.1 s). Replies are the same;
    strategies sort them by client, so their arrival order does not matter."""

    def __init__(self, grid: Grid, poll_s: float = POLL_S) -> None:
        self.grid, self.poll_s = grid, poll_s

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """HttpGrid's loop (no timeout: wait for every reply) at a shorter interval."""
        pending = set(self.push_messages(messages))
        end = time.time() + (timeout or 0.0)
        replies: list[Message] = []
        while timeout is None or time.time() < end:
            pulled = list(self.pull_messages(pending))
            replies += pulled
            pending -= {m.metadata.reply_to_message_id for m in pulled}
            if not pending:
                break
            time.sleep(self.poll_s)
        return replies
