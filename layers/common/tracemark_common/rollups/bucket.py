"""One rollup bucket (an hour or a day of one scope) and its compact binary form. Pure: no AWS.

A bucket holds everything the dashboard needs about its sessions: the scalar counters
(sessions, tokens, cost, lines, PRs), the commit de-duplication terms `g#<d>` (see
`rollups.deltas`), one fixed-size record per user (sessions, AI lines, tokens, cost) and per
model (sessions, tokens, cost), and the users' and models' names.

The binary form is built for the query, which reads up to 180 buckets per request: the scalars
are a small JSON head, the per-user and per-model counters are fixed-width `struct` records that
the query walks at C speed without building a dict per bucket, and the user names (the bulk of
the bytes) are only decoded for the few buckets that name a Top User. Decoding therefore costs
about the same for a bucket of 5 users and one of 60, which keeps a query's latency independent
of how many sessions the buckets count.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from tracemark_common.rollups.deltas import (
    GAP,
    MODEL_COST,
    MODEL_NAME,
    MODEL_SESSIONS,
    MODEL_TOKENS,
    SCALARS,
    USER_AI,
    USER_COST,
    USER_KIND,
    USER_NAME,
    USER_SESSIONS,
    USER_TOKENS,
    BucketDelta,
)

MAGIC = b"TMR1"
_HEADER = struct.Struct("<4sIII")  # magic, len(head JSON), len(names JSON), len(user records)
USER_RECORD = struct.Struct("<8sqqqq")  # user hash, sessions, AI lines, tokens, cost (micro-USD)
MODEL_RECORD = struct.Struct("<8sqqq")  # model hash, sessions, tokens, cost (micro-USD)
_USER_FIELDS = {USER_SESSIONS: 0, USER_AI: 1, USER_TOKENS: 2, USER_COST: 3}
_MODEL_FIELDS = {MODEL_SESSIONS: 0, MODEL_TOKENS: 1, MODEL_COST: 2}
_INT64 = (-(2**63), 2**63 - 1)


class CorruptBucket(ValueError):
    """A stored bucket that is not in this module's format (or damaged)."""


def _hash(hex_ident: str) -> bytes:
    """The 8-byte user/model hash of a delta name's hex suffix (`short_hash`)."""
    try:
        raw = bytes.fromhex(hex_ident)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        raise ValueError(f"not a 16-hex-digit name hash: {hex_ident[:40]!r}")
    return raw


def _checked(value: int) -> int:
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError("rollup counter out of the 64-bit range")
    return value


@dataclass
class Bucket:
    """A bucket, decoded for writing (`apply`) or reading (`users`, `models`, names on demand)."""

    scalars: dict[str, int] = field(default_factory=dict)
    gaps: dict[int, int] = field(default_factory=dict)
    active_users: int = 0
    models: dict[bytes, tuple[int, int, int]] = field(default_factory=dict)
    model_names: dict[bytes, str] = field(default_factory=dict)
    _user_bytes: bytes = b""
    _names_bytes: bytes = b""

    # ---- reading ----------------------------------------------------------------------------

    def num(self, name: str) -> int:
        return self.scalars.get(name, 0)

    def user_records(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        """(hash, sessions, AI lines, tokens, cost) per user, straight from the packed bytes."""
        return USER_RECORD.iter_unpack(self._user_bytes)

    @cached_property
    def user_names(self) -> dict[bytes, tuple[str, str]]:
        """hash -> (name, kind); decoded on first use only."""
        if not self._names_bytes:
            return {}
        raw = json.loads(self._names_bytes)
        return {bytes.fromhex(h): (str(v[0]), str(v[1])) for h, v in raw.items()}

    def is_empty(self) -> bool:
        return not any(self.scalars.values()) and not any(self.gaps.values()) and not self._user_bytes

    # ---- writing ----------------------------------------------------------------------------

    def apply(self, delta: BucketDelta) -> Bucket:
        """A new bucket: this one moved by `delta` (flat counter names of `rollups.deltas`).
        Users and models that no longer count anything are dropped with their names."""
        scalars = dict(self.scalars)
        gaps = dict(self.gaps)
        users = {h: list(rec) for h, *rec in self.user_records()}
        before = set(users)
        user_names: dict[bytes, tuple[str, str]] = {}
        models = {h: list(rec) for h, rec in self.models.items()}
        model_names = dict(self.model_names)
        for name, value in delta.counters.items():
            prefix, ident = name[:3], name[3:]
            if prefix in _USER_FIELDS:
                users.setdefault(_hash(ident), [0, 0, 0, 0])[_USER_FIELDS[prefix]] += value
            elif prefix in _MODEL_FIELDS:
                models.setdefault(_hash(ident), [0, 0, 0])[_MODEL_FIELDS[prefix]] += value
            elif name.startswith(GAP) and name[len(GAP) :].isdigit():
                d = int(name[len(GAP) :])
                gaps[d] = gaps.get(d, 0) + value
            elif name in SCALARS:
                scalars[name] = scalars.get(name, 0) + value
            else:
                raise ValueError(f"unknown rollup counter {name[:40]!r}")
        for name, text in delta.strings.items():
            prefix, ident = name[:3], name[3:]
            if prefix == USER_NAME:
                user_names[_hash(ident)] = (text, user_names.get(_hash(ident), ("", "user"))[1])
            elif prefix == USER_KIND:
                user_names[_hash(ident)] = (user_names.get(_hash(ident), (ident, "user"))[0], text)
            elif prefix == MODEL_NAME:
                model_names[_hash(ident)] = text
        users = {h: rec for h, rec in users.items() if any(rec)}
        models = {h: rec for h, rec in models.items() if any(rec)}
        if users.keys() == before:
            # The same users as before: their names are stored already (a name is the preimage of
            # its hash, and a user's kind does not change), so no JSON round trip.
            names_bytes: bytes | None = self._names_bytes
        else:
            names_bytes = None
            user_names = {**self.user_names, **user_names}
        return Bucket.build(
            scalars={k: v for k, v in scalars.items() if v},
            gaps={d: v for d, v in gaps.items() if v},
            users={h: (rec[0], rec[1], rec[2], rec[3]) for h, rec in users.items()},
            user_names={h: n for h, n in user_names.items() if h in users},
            models={h: (rec[0], rec[1], rec[2]) for h, rec in models.items()},
            model_names={h: n for h, n in model_names.items() if h in models},
            names_bytes=names_bytes,
        )

    @classmethod
    def build(
        cls,
        *,
        scalars: Mapping[str, int],
        gaps: Mapping[int, int],
        users: Mapping[bytes, tuple[int, int, int, int]],
        user_names: Mapping[bytes, tuple[str, str]],
        models: Mapping[bytes, tuple[int, int, int]],
        model_names: Mapping[bytes, str],
        names_bytes: bytes | None = None,
    ) -> Bucket:
        """A bucket from decoded parts; `names_bytes`, when given, are the already encoded names
        of exactly these users (`user_names` is then not read)."""
        ordered = sorted(users.items())
        user_bytes = b"".join(USER_RECORD.pack(h, *(_checked(v) for v in rec)) for h, rec in ordered)
        if names_bytes is None:
            names = {h.hex(): list(user_names.get(h, (h.hex(), "user"))) for h, _ in ordered}
            names_bytes = json.dumps(names, separators=(",", ":"), sort_keys=True).encode() if names else b""
        return cls(
            scalars={k: _checked(v) for k, v in scalars.items()},
            gaps={d: _checked(v) for d, v in gaps.items()},
            active_users=sum(1 for _, rec in ordered if rec[0] > 0),
            models=dict(models),
            model_names=dict(model_names),
            _user_bytes=user_bytes,
            _names_bytes=names_bytes,
        )

    # ---- the binary form --------------------------------------------------------------------

    def encode(self) -> bytes:
        head = {
            "s": self.scalars,
            "g": {str(d): v for d, v in sorted(self.gaps.items())},
            "a": self.active_users,
            "m": [[h.hex(), self.model_names.get(h, h.hex()), *rec] for h, rec in sorted(self.models.items())],
        }
        head_bytes = json.dumps(head, separators=(",", ":"), sort_keys=True).encode()
        body = (
            _HEADER.pack(MAGIC, len(head_bytes), len(self._names_bytes), len(self._user_bytes))
            + head_bytes
            + self._names_bytes
            + self._user_bytes
        )
        return zlib.compress(body, 6)

    @classmethod
    def decode(cls, blob: bytes) -> Bucket:
        try:
            body = zlib.decompress(blob)
            magic, head_len, names_len, users_len = _HEADER.unpack_from(body)
            if magic != MAGIC or _HEADER.size + head_len + names_len + users_len != len(body):
                raise CorruptBucket("not a Tracemark rollup bucket")
            if users_len % USER_RECORD.size:
                raise CorruptBucket("user records are truncated")
            offset = _HEADER.size
            head = json.loads(body[offset : offset + head_len])
            offset += head_len
            names = body[offset : offset + names_len]
            users = body[offset + names_len :]
            models = {bytes.fromhex(m[0]): (int(m[2]), int(m[3]), int(m[4])) for m in head.get("m", [])}
            return cls(
                scalars={str(k): int(v) for k, v in head.get("s", {}).items()},
                gaps={int(d): int(v) for d, v in head.get("g", {}).items()},
                active_users=int(head.get("a", 0)),
                models=models,
                model_names={bytes.fromhex(m[0]): str(m[1]) for m in head.get("m", [])},
                _user_bytes=users,
                _names_bytes=names,
            )
        except CorruptBucket:
            raise
        except (zlib.error, struct.error, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise CorruptBucket(f"damaged rollup bucket ({type(exc).__name__})") from exc


EMPTY = Bucket()
