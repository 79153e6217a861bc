"""CurveZMQ keys derived from the cluster secret.

Trust model (Erlang's cookie): **every node that holds the cluster secret is trusted
completely.** It can send to any process, spawn any function (cloudpickle: arbitrary
code) and read every message. The secret is the only credential; there are no
per-node identities, no roles and no revocation short of changing the secret on every
node. Keep it out of version control, give each cluster its own, and rotate it by
restarting the cluster with a new one. A peer without the secret cannot complete the
CurveZMQ handshake, so none of its bytes ever reach the frame decoder (see `_auth`).

Derivation: the secret (``ALIGHT_CLUSTER_SECRET``, or the contents of a key file) is
stretched with scrypt (stdlib ``hashlib.scrypt``; n=2**14, r=8, p=1, about 50 ms, run
once per node start) into the 32-byte Curve25519 secret key, and its public key follows
with ``zmq.curve_public``. Every node of a cluster thus derives the same keypair: it is
both the servers' key (clients check it with ``curve_serverkey``) and the clients' key
(the ZAP handler admits only that public key). scrypt rather than a plain hash because a
passive observer of a CURVE handshake can test guesses of the secret offline; stretching
makes guessing a weak secret expensive. A 16-byte minimum is enforced; 32 random bytes
are recommended.

Errors are `BadSecret`, with a message that says what to do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.utils import z85

from .errors import BadSecret

__all__ = ["ENV_VAR", "MIN_SECRET_BYTES", "ClusterKeys", "derive_keys", "load_keys", "load_secret"]

ENV_VAR = "ALIGHT_CLUSTER_SECRET"
"""The environment variable holding the cluster secret (UTF-8)."""

MIN_SECRET_BYTES = 16
"""Secrets shorter than this are refused with `BadSecret`."""

# Domain separation: the same secret used by something else never yields these keys.
_SALT = b"alight.cluster.curve25519.v1"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    """The cluster's CurveZMQ keypair, Z85-encoded (40 ASCII bytes each), as pyzmq's
    ``curve_*`` socket options take them. ``public_raw`` is the 32-byte public key, as
    a ZAP request carries it. The secret key never appears in ``repr``."""

    public: bytes
    secret: bytes = field(repr=False)

    @property
    def public_raw(self) -> bytes:
        """The 32-byte public key, as ZAP requests present a CURVE client's key."""
        return z85.decode(self.public)


def fingerprint(keys: ClusterKeys) -> str:
    """A short public name of the cluster (16 hex digits of SHA-256 over its public key,
    which is public anyway): what ``GET /_alight/cluster`` answers on every node, so that
    a node can tell whether a port it would share is held by its own cluster."""
    return hashlib.sha256(keys.public).hexdigest()[:16]


def derive_key(keys: ClusterKeys, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` (HMAC-SHA256 under the cluster's secret key), the
    same on every node with the secret: an endpoint's token key, a broker's seal."""
    return hmac.new(keys.secret, b"alight:" + purpose.encode(), hashlib.sha256).digest()


def derive_secret(keys: ClusterKeys, purpose: str) -> str:
    """`derive_key` as URL-safe text: e.g. an endpoint's token key when none was
    configured, the same on every node of the cluster (mesh or broker)."""
    return base64.urlsafe_b64encode(derive_key(keys, purpose)).decode().rstrip("=")


def derive_keys(secret: bytes | str) -> ClusterKeys:
    """Derive the cluster keypair from ``secret`` (at least `MIN_SECRET_BYTES` bytes).

    Deterministic: the same secret gives the same keys on every node. Raises
    `BadSecret` if the secret is too short."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise BadSecret(
            f"the cluster secret is {len(raw)} bytes; at least {MIN_SECRET_BYTES} are required "
            f"(32 random bytes recommended, e.g. secrets.token_urlsafe(32))"
        )
    seed = hashlib.scrypt(raw, salt=_SALT, dklen=32, **_SCRYPT)
    secret_z85 = z85.encode(seed)
    return ClusterKeys(public=zmq.curve_public(secret_z85), secret=secret_z85)


def load_secret(
    *,
    secret: bytes | str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """Find the cluster secret: ``secret`` if given, else the contents of ``key_file``
    (trailing whitespace stripped), else the ``ALIGHT_CLUSTER_SECRET`` variable of
    ``environ`` (default ``os.environ``).

    Like Erlang's cookie file, a key file readable or writable by group or others is
    refused (``chmod 600`` it). Raises `BadSecret` if there is no secret, the file cannot
    be read, or the secret is shorter than `MIN_SECRET_BYTES`."""
    if secret is not None:
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    elif key_file is not None:
        raw = _read_key_file(Path(key_file))
    else:
        value = (os.environ if environ is None else environ).get(ENV_VAR)
        if not value:
            raise BadSecret(
                f"no cluster secret: set {ENV_VAR} to the same secret on every node (at least "
                f"{MIN_SECRET_BYTES} random bytes, e.g. from secrets.token_urlsafe(32)), or use a key file"
            )
        raw = value.encode()
    if len(raw) < MIN_SECRET_BYTES:
        raise BadSecret(f"the cluster secret is {len(raw)} bytes; at least {MIN_SECRET_BYTES} are required")
    return raw


def load_keys(
    *,
    secret: bytes | str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClusterKeys:
    """`load_secret` then `derive_keys`: the keypair a node uses. Raises `BadSecret`."""
    return derive_keys(load_secret(secret=secret, key_file=key_file, environ=environ))


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BadSecret(f"key file {str(path)!r} is accessible by group or others; run: chmod 600 {path}")
        return path.read_bytes().rstrip()
    except OSError as exc:
        raise BadSecret(f"cannot read key file {str(path)!r}: {exc.strerror or exc}") from exc
