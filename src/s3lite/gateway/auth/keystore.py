"""Access keys, grants and bucket owners, in ``keys.sqlite3`` (file mode 0600).

Tables: ``keys`` (access key id, secret, name, created, root flag), ``grants`` (key,
bucket, read, write) and ``owners`` (bucket, key). The gateway is the only writer (the
CLI goes through the admin API), so everything is also held in memory: checking a
request's key costs a dictionary lookup, and every change is written through, in one
transaction, before memory changes.

SigV4 needs the secret itself on the server side (it is an HMAC key), so secrets are
stored as they are; the file is readable by its owner only. Nothing here logs, and
:class:`Key`'s repr leaves the secret out.

The root key comes from ``S3LITE_ROOT_USER``/``S3LITE_ROOT_PASSWORD`` when both are
set (and replaces a stored root key); otherwise the stored one is used, or one is
generated at the first start, and :attr:`KeyStore.generated_root` tells the caller to
print it once.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import string
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from ...errors import InvalidArgument
from .policy import NOBODY, Identity, Rights

ROOT_USER_ENV = "S3LITE_ROOT_USER"
ROOT_PASSWORD_ENV = "S3LITE_ROOT_PASSWORD"
FILE_NAME = "keys.sqlite3"
_ACCESS_KEY = re.compile(r"[A-Za-z0-9._-]{3,128}")
MIN_SECRET = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    access_key TEXT PRIMARY KEY, secret TEXT NOT NULL, name TEXT NOT NULL,
    created REAL NOT NULL, root INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS grants (
    access_key TEXT NOT NULL, bucket TEXT NOT NULL, read INTEGER NOT NULL,
    write INTEGER NOT NULL, PRIMARY KEY (access_key, bucket));
CREATE TABLE IF NOT EXISTS owners (bucket TEXT PRIMARY KEY, access_key TEXT NOT NULL);
"""


@attrs.frozen
class Key:
    access_key: str
    secret: str = attrs.field(repr=False)
    name: str
    created: float
    root: bool = False

    def describe(self) -> dict[str, object]:
        """The key as ``key list`` shows it: everything but the secret."""
        return {
            "access_key": self.access_key,
            "name": self.name,
            "created": self.created,
            "root": self.root,
        }


def root_from_env(env: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(access key, secret) from the environment, None if neither is set (or both are
    empty, as docker compose passes unset variables); ValueError
    if only one is, or if they break the rules (so a typo never starts a gateway with
    a generated key nobody knows)."""
    user, password = env.get(ROOT_USER_ENV) or None, env.get(ROOT_PASSWORD_ENV) or None
    if user is None and password is None:
        return None
    if not user or not password:
        raise ValueError(f"set both {ROOT_USER_ENV} and {ROOT_PASSWORD_ENV}, or neither")
    check_credentials(user, password)
    return user, password


def check_credentials(access_key: str, secret: str) -> None:
    if _ACCESS_KEY.fullmatch(access_key) is None:
        raise ValueError("an access key id is 3 to 128 letters, digits, '.', '_' or '-'")
    if len(secret) < MIN_SECRET or not secret.isprintable() or not secret.isascii():
        raise ValueError(f"a secret key is at least {MIN_SECRET} printable ASCII characters")


def new_access_key() -> str:
    return "S3L" + "".join(
        secrets.choice(string.ascii_uppercase + string.digits) for _ in range(17)
    )


def new_secret() -> str:
    return secrets.token_urlsafe(30)


class KeyStore:
    """Keys, grants and owners; see the module docstring. Open with :meth:`open`."""

    def __init__(self, db: sqlite3.Connection, root: Key, *, generated_root: bool) -> None:
        self._db = db
        self.root = root
        self.generated_root = generated_root
        self._keys: dict[str, Key] = {}
        self._grants: dict[tuple[str, str], tuple[bool, bool]] = {}
        self._owners: dict[str, str] = {}
        for row in db.execute("SELECT access_key, secret, name, created, root FROM keys"):
            self._keys[row[0]] = Key(row[0], row[1], row[2], row[3], bool(row[4]))
        for key, bucket, read, write in db.execute("SELECT * FROM grants"):
            self._grants[key, bucket] = (bool(read), bool(write))
        self._owners = dict(db.execute("SELECT bucket, access_key FROM owners").fetchall())

    @classmethod
    def open(cls, directory: Path, *, root: tuple[str, str] | None = None) -> KeyStore:
        """Open (or create) ``directory/keys.sqlite3``; ``root`` replaces the stored root
        key (see :func:`root_from_env`)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FILE_NAME
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        stored = db.execute(
            "SELECT access_key, secret, name, created FROM keys WHERE root = 1"
        ).fetchone()
        generated = False
        if root is not None:
            if stored is None or (stored[0], stored[1]) != root:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("UPDATE keys SET root = 0 WHERE root = 1")
                    db.execute("DELETE FROM keys WHERE access_key = ?", (root[0],))
                    db.execute("INSERT INTO keys VALUES (?, ?, 'root', ?, 1)", (*root, time.time()))
        elif stored is None:
            root = (new_access_key(), new_secret())
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO keys VALUES (?, ?, 'root', ?, 1)", (*root, time.time()))
            generated = True
        row = db.execute(
            "SELECT access_key, secret, name, created FROM keys WHERE root = 1"
        ).fetchone()
        return cls(db, Key(row[0], row[1], row[2], row[3], True), generated_root=generated)

    def close(self) -> None:
        self._db.close()

    # -- keys

    def secret(self, access_key: str) -> str | None:
        key = self._keys.get(access_key)
        return None if key is None else key.secret

    def identity(self, access_key: str) -> Identity:
        key = self._key(access_key)
        return Identity(key.access_key, key.root)

    def _key(self, access_key: str) -> Key:
        key = self._keys.get(access_key)
        if key is None:
            raise InvalidArgument(f"no key {access_key!r}")
        return key

    def list_keys(self) -> list[Key]:
        return sorted(self._keys.values(), key=lambda key: (not key.root, key.created))

    def create_key(self, name: str = "") -> Key:
        """A new key with a generated id and secret (returned once, to show the user)."""
        if len(name) > 256 or not name.isprintable():
            raise InvalidArgument("a key name is at most 256 printable characters")
        key = Key(new_access_key(), new_secret(), name, time.time())
        self._write(
            [
                (
                    "INSERT INTO keys VALUES (?, ?, ?, ?, 0)",
                    (key.access_key, key.secret, name, key.created),
                )
            ]
        )
        self._keys[key.access_key] = key
        return key

    def delete_key(self, access_key: str) -> None:
        """Delete a key and its grants; the buckets it owned pass to the root key."""
        key = self._key(access_key)
        if key.root:
            raise InvalidArgument("the root key cannot be deleted (set S3LITE_ROOT_* to change it)")
        self._write(
            [
                ("DELETE FROM keys WHERE access_key = ?", (access_key,)),
                ("DELETE FROM grants WHERE access_key = ?", (access_key,)),
                (
                    "UPDATE owners SET access_key = ? WHERE access_key = ?",
                    (self.root.access_key, access_key),
                ),
            ]
        )
        del self._keys[access_key]
        self._grants = {kb: g for kb, g in self._grants.items() if kb[0] != access_key}
        self._owners = {
            b: self.root.access_key if o == access_key else o for b, o in self._owners.items()
        }

    # -- grants

    def grant(
        self, access_key: str, bucket: str, *, read: bool | None, write: bool | None
    ) -> tuple[bool, bool]:
        """Set the key's read and/or write grant on ``bucket`` (None leaves one as it
        is); returns the grant now held. A grant of neither is removed."""
        self._key(access_key)
        old_read, old_write = self._grants.get((access_key, bucket), (False, False))
        new = (old_read if read is None else read, old_write if write is None else write)
        if any(new):
            sql = "INSERT OR REPLACE INTO grants VALUES (?, ?, ?, ?)"
            self._write([(sql, (access_key, bucket, *new))])
            self._grants[access_key, bucket] = new
        else:
            self._write(
                [("DELETE FROM grants WHERE access_key = ? AND bucket = ?", (access_key, bucket))]
            )
            self._grants.pop((access_key, bucket), None)
        return new

    def grants_of(self, access_key: str) -> dict[str, dict[str, bool]]:
        return {
            bucket: {"read": read, "write": write}
            for (key, bucket), (read, write) in sorted(self._grants.items())
            if key == access_key
        }

    # -- owners

    def owner(self, bucket: str) -> str | None:
        return self._owners.get(bucket)

    def rights(self, access_key: str, bucket: str) -> Rights:
        owner = self._owners.get(bucket)
        if owner is None:
            return NOBODY
        read, write = self._grants.get((access_key, bucket), (False, False))
        return Rights(owner=owner == access_key, read=read, write=write)

    def claim(self, bucket: str, access_key: str) -> str:
        """Make ``access_key`` the owner of ``bucket`` unless it has one; returns the
        owner (check it: another key may hold the name)."""
        owner = self._owners.get(bucket)
        if owner is None:
            self._write([("INSERT OR IGNORE INTO owners VALUES (?, ?)", (bucket, access_key))])
            self._owners[bucket] = owner = access_key
        return owner

    def adopt(self, buckets: Iterable[str]) -> None:
        """Give the root key every bucket in ``buckets`` that has no owner (buckets
        made before keys existed)."""
        orphans = [b for b in buckets if b not in self._owners]
        if orphans:
            sql = "INSERT OR IGNORE INTO owners VALUES (?, ?)"
            self._write([(sql, (b, self.root.access_key)) for b in orphans])
            self._owners.update(dict.fromkeys(orphans, self.root.access_key))

    def forget(self, bucket: str) -> None:
        """A bucket was deleted: drop its owner and every grant on it."""
        self._write(
            [
                ("DELETE FROM owners WHERE bucket = ?", (bucket,)),
                ("DELETE FROM grants WHERE bucket = ?", (bucket,)),
            ]
        )
        self._owners.pop(bucket, None)
        self._grants = {kb: g for kb, g in self._grants.items() if kb[1] != bucket}

    def _write(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for sql, parameters in statements:
                self._db.execute(sql, parameters)
