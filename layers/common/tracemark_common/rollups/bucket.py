"""One rollup bucket (an hour or a day of one scope) and its compact binary form. Pure: no AWS.

A bucket holds the numbers the dashboard needs about its sessions: the scalar counters
(sessions, tokens, cost, lines, PRs), the commit de-duplication terms `g#<d>` (see
`rollups.deltas`), one fixed-size record per user (sessions, AI lines, tokens, cost) and per
model (sessions, tokens, cost), and the models' names. Users' names are not in buckets: the
store keeps them once per organisation, and the query looks up only the Top Users'.

The binary form is built for the query, which reads up to 180 buckets per request: fixed-width
little-endian `struct` fields and records throughout (only the few model names are JSON), so
decoding a bucket costs about the same whether it counts 5 users or 60, and a query's latency
does not grow with the number of sessions the buckets count.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from tracemark_common.rollups.deltas import (
    GAP,
    MODEL_COST,
    MODEL_NAME,
    MODEL_SESSIONS,
    MODEL_TOKENS,
    MODEL_UNPRICED,
    SCALARS,
    USER_AI,
    USER_COST,
    USER_SESSIONS,
    USER_TOKENS,
    BucketDelta,
)

MAGIC = b"TMR3"
_OLD_MAGIC = b"TMR2"  # before `unpriced_sessions`: one scalar and one model field fewer
# magic, number of g#<d> terms, of models, length of the models' names (JSON), number of users
_HEADER = struct.Struct("<4sHHII")
SCALAR_ORDER = (
    "sessions", "tokens", "input_tokens", "output_tokens", "cost_micro_usd", "ai_lines", "lines", "prs",
    "unpriced_sessions",
)  # fmt: skip
_SCALARS = struct.Struct("<" + "q" * (len(SCALAR_ORDER) + 1))  # the scalars, then the active users
_OLD_SCALARS = struct.Struct("<" + "q" * len(SCALAR_ORDER))
_GAP = struct.Struct("<Hq")  # d, term
USER_RECORD = struct.Struct("<8sqqqq")  # user hash, sessions, AI lines, tokens, cost (micro-USD)
MODEL_RECORD = struct.Struct("<8sqqqq")  # model hash, sessions, tokens, cost (micro-USD), unpriced sessions
_OLD_MODEL_RECORD = struct.Struct("<8sqqq")
_USER_FIELDS = {USER_SESSIONS: 0, USER_AI: 1, USER_TOKENS: 2, USER_COST: 3}
_MODEL_FIELDS = {MODEL_SESSIONS: 0, MODEL_TOKENS: 1, MODEL_COST: 2, MODEL_UNPRICED: 3}
_INT64 = (-(2**63), 2**63 - 1)
assert set(SCALAR_ORDER) == SCALARS


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
    """A bucket, decoded for writing (`apply`) or reading (`user_records`, `models`)."""

    scalars: dict[str, int] = field(default_factory=dict)
    gaps: dict[int, int] = field(default_factory=dict)
    active_users: int = 0
    models: dict[bytes, tuple[int, int, int, int]] = field(default_factory=dict)  # sessions, tokens, cost, unpriced
    model_names: dict[bytes, str] = field(default_factory=dict)
    _user_bytes: bytes = b""

    # ---- reading ----------------------------------------------------------------------------

    def num(self, name: str) -> int:
        return self.scalars.get(name, 0)

    def user_records(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        """(hash, sessions, AI lines, tokens, cost) per user, straight from the packed bytes."""
        return USER_RECORD.iter_unpack(self._user_bytes)

    def is_empty(self) -> bool:
        return not any(self.scalars.values()) and not any(self.gaps.values()) and not self._user_bytes

    # ---- writing ----------------------------------------------------------------------------

    def apply(self, delta: BucketDelta) -> Bucket:
        """A new bucket: this one moved by `delta` (flat counter names of `rollups.deltas`; user
        names and kinds in it are for the store's name registry and ignored here). Users and
        models that no longer count anything are dropped."""
        scalars = dict(self.scalars)
        gaps = dict(self.gaps)
        users = {h: list(rec) for h, *rec in self.user_records()}
        models = {h: list(rec) for h, rec in self.models.items()}
        model_names = dict(self.model_names)
        for name, value in delta.counters.items():
            prefix, ident = name[:3], name[3:]
            if prefix in _USER_FIELDS:
                users.setdefault(_hash(ident), [0, 0, 0, 0])[_USER_FIELDS[prefix]] += value
            elif prefix in _MODEL_FIELDS:
                models.setdefault(_hash(ident), [0, 0, 0, 0])[_MODEL_FIELDS[prefix]] += value
            elif name.startswith(GAP) and name[len(GAP) :].isdigit():
                d = int(name[len(GAP) :])
                gaps[d] = gaps.get(d, 0) + value
            elif name in SCALARS:
                scalars[name] = scalars.get(name, 0) + value
            else:
                raise ValueError(f"unknown rollup counter {name[:40]!r}")
        for name, text in delta.strings.items():
            if name.startswith(MODEL_NAME):
                model_names[_hash(name[len(MODEL_NAME) :])] = text
        users = {h: rec for h, rec in users.items() if any(rec)}
        models = {h: rec for h, rec in models.items() if any(rec)}
        ordered = sorted(users.items())
        return Bucket(
            scalars={k: _checked(v) for k, v in scalars.items() if v},
            gaps={d: _checked(v) for d, v in gaps.items() if v},
            active_users=sum(1 for _, rec in ordered if rec[0] > 0),
            models={h: (_checked(r[0]), _checked(r[1]), _checked(r[2]), _checked(r[3])) for h, r in models.items()},
            model_names={h: n for h, n in model_names.items() if h in models},
            _user_bytes=b"".join(USER_RECORD.pack(h, *(_checked(v) for v in rec)) for h, rec in ordered),
        )

    # ---- the binary form --------------------------------------------------------------------

    def encode(self) -> bytes:
        """The compressed binary form (a daily item's `b`)."""
        return zlib.compress(self.to_bytes(), 6)

    @classmethod
    def decode(cls, blob: bytes) -> Bucket:
        try:
            body = zlib.decompress(blob)
        except zlib.error as exc:
            raise CorruptBucket(f"damaged rollup bucket ({type(exc).__name__})") from exc
        return cls.from_bytes(body)

    def to_bytes(self) -> bytes:
        """The uncompressed binary form (an hour pack compresses its 24 hours together, so the
        users' hashes repeated from hour to hour cost a few bytes each)."""
        gaps = sorted(self.gaps.items())
        models = sorted(self.models.items())
        names = json.dumps([self.model_names.get(h, h.hex()) for h, _ in models], separators=(",", ":")).encode()
        parts = [
            _HEADER.pack(MAGIC, len(gaps), len(models), len(names), len(self._user_bytes) // USER_RECORD.size),
            _SCALARS.pack(*(self.scalars.get(name, 0) for name in SCALAR_ORDER), self.active_users),
            b"".join(_GAP.pack(d, v) for d, v in gaps),
            b"".join(MODEL_RECORD.pack(h, *rec) for h, rec in models),
            names,
            self._user_bytes,
        ]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, body: bytes) -> Bucket:
        try:
            magic, n_gaps, n_models, names_len, n_users = _HEADER.unpack_from(body)
            if magic not in (MAGIC, _OLD_MAGIC):
                raise CorruptBucket("not a Tracemark rollup bucket")
            old = magic == _OLD_MAGIC
            scalars_struct, model_struct = (_OLD_SCALARS, _OLD_MODEL_RECORD) if old else (_SCALARS, MODEL_RECORD)
            offset = _HEADER.size
            sizes = (scalars_struct.size, n_gaps * _GAP.size, n_models * model_struct.size, names_len)
            if offset + sum(sizes) + n_users * USER_RECORD.size != len(body):
                raise CorruptBucket("rollup bucket has the wrong length")
            *values, active = scalars_struct.unpack_from(body, offset)
            if old:
                values.append(0)
            offset += sizes[0]
            gaps = dict(_GAP.iter_unpack(body[offset : offset + sizes[1]]))
            offset += sizes[1]
            records = [(*r, 0)[:5] for r in model_struct.iter_unpack(body[offset : offset + sizes[2]])]
            offset += sizes[2]
            names = json.loads(body[offset : offset + names_len]) if names_len else []
            offset += names_len
            if not isinstance(names, list) or len(names) != n_models:
                raise CorruptBucket("rollup bucket's model names do not match its models")
            return cls(
                scalars={name: v for name, v in zip(SCALAR_ORDER, values, strict=True) if v},
                gaps=gaps,
                active_users=active,
                models={r[0]: (r[1], r[2], r[3], r[4]) for r in records},
                model_names={r[0]: str(n) for r, n in zip(records, names, strict=True)},
                _user_bytes=body[offset:],
            )
        except CorruptBucket:
            raise
        except (struct.error, ValueError, TypeError) as exc:
            raise CorruptBucket(f"damaged rollup bucket ({type(exc).__name__})") from exc
