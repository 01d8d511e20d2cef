"""One rollup bucket (an hour or a day of one scope) and its compact binary form. Pure: no AWS.

A bucket holds the numbers the dashboard needs about its sessions: the scalar counters
(sessions, tokens, cost, lines, PRs), the commit de-duplication terms `g#<d>` (see
`rollups.deltas`), per user (sessions, AI lines, tokens, cost) and per model (sessions, tokens,
cost, unpriced sessions), and the models' names. Users' names are not in buckets: the store keeps
them once per organisation (`RollupStore.read_periods` returns them).

The binary form is built for the query, which reads up to 180 buckets per request: fixed-width
little-endian `struct` fields throughout (only the few model names are JSON). The users are
columns (their hashes, then sessions, AI lines, tokens and cost, each `n` int64s): decoding is one
`unpack_from`, and `Totals` adds the columns of buckets that count the same users as whole lists,
so a query's latency barely grows with the number of sessions the buckets count.
"""

from __future__ import annotations

import json
import operator
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

MAGIC = b"TMR4"
_RECORDS_MAGIC = b"TMR3"  # users as one record each instead of columns
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


class Totals:
    """Users' and models' records summed over buckets (`add`), or differenced (`sign=-1`):
    user hash -> [sessions, AI lines, tokens, cost], model hash -> [sessions, tokens, cost,
    unpriced sessions], and the models' names.

    Buckets that count the same users (an active organisation's days) have byte-identical hash
    columns: their counter columns are added as whole lists (`map(operator.add)`, C speed), and
    spread per user once, when `users` is read."""

    __slots__ = ("_blocks", "_users", "model_names", "models")

    def __init__(self) -> None:
        self._users: dict[bytes, list[int]] = {}
        self._blocks: dict[bytes, list[int]] = {}  # users' hash column -> summed counter columns
        self.models: dict[bytes, list[int]] = {}
        self.model_names: dict[bytes, str] = {}

    @property
    def users(self) -> dict[bytes, list[int]]:
        if self._blocks:
            self._spread()
        return self._users

    def add(self, bucket: Bucket, sign: int = 1) -> None:
        if sign not in (1, -1):
            raise ValueError("sign must be 1 or -1")
        hashes = bucket._user_hashes
        if hashes:
            columns = bucket._user_columns
            block = self._blocks.get(hashes)
            if block is None:
                self._blocks[hashes] = list(columns) if sign == 1 else [-v for v in columns]
            else:
                block[:] = map(operator.add if sign == 1 else operator.sub, block, columns)
        self._add_models(bucket.models, bucket.model_names, sign)

    def _add_models(self, models: Mapping[bytes, Sequence[int]], names: Mapping[bytes, str], sign: int) -> None:
        for ident, record in models.items():
            total = self.models.setdefault(ident, [0, 0, 0, 0])
            self.model_names.setdefault(ident, names.get(ident, ident.hex()))
            for i, v in enumerate(record):
                total[i] += sign * v

    def _spread(self) -> None:
        users = self._users
        for hashes, columns in self._blocks.items():
            n = len(hashes) // 8
            for i in range(n):
                ident = hashes[8 * i : 8 * i + 8]
                row = users.get(ident)
                if row is None:
                    users[ident] = [columns[i], columns[n + i], columns[2 * n + i], columns[3 * n + i]]
                else:
                    row[0] += columns[i]
                    row[1] += columns[n + i]
                    row[2] += columns[2 * n + i]
                    row[3] += columns[3 * n + i]
        self._blocks.clear()

    def add_all(self, buckets: Iterable[Bucket]) -> Totals:
        for bucket in buckets:
            self.add(bucket)
        return self

    def is_empty(self) -> bool:
        return not any(any(rec) for rec in self.users.values()) and not any(any(r) for r in self.models.values())

    def copy(self) -> Totals:
        other = Totals()
        other._users = {h: list(rec) for h, rec in self.users.items()}
        other.models = {h: list(rec) for h, rec in self.models.items()}
        other.model_names = dict(self.model_names)
        return other

    def merge(self, other: Totals, sign: int = 1) -> Totals:
        """Add `other`'s records to these (subtract them with `sign=-1`)."""
        users = self.users
        for ident, rec in other.users.items():
            row = users.setdefault(ident, [0, 0, 0, 0])
            for i, v in enumerate(rec):
                row[i] += sign * v
        self._add_models(other.models, other.model_names, sign)
        return self

    def difference(self, earlier: Totals) -> Totals:
        """These totals less `earlier`'s (what was added after it)."""
        return self.copy().merge(earlier, -1)


def _user_columns(users: list[tuple[bytes, list[int]]]) -> tuple[bytes, tuple[int, ...]]:
    """Sorted (hash, [sessions, AI lines, tokens, cost]) as the hash column and the four
    counter columns end to end."""
    return b"".join(h for h, _ in users), tuple(_checked(rec[f]) for f in range(4) for _, rec in users)


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
    # users sorted by hash: their hashes end to end, and the columns sessions, AI lines, tokens
    # and cost end to end (n values each)
    _user_hashes: bytes = b""
    _user_columns: tuple[int, ...] = ()

    # ---- reading ----------------------------------------------------------------------------

    def num(self, name: str) -> int:
        return self.scalars.get(name, 0)

    def user_records(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        """(hash, sessions, AI lines, tokens, cost) per user, straight from the packed bytes."""
        h, c = self._user_hashes, self._user_columns
        n = len(h) // 8
        hashes = [h[i : i + 8] for i in range(0, 8 * n, 8)]
        return zip(hashes, c[:n], c[n : 2 * n], c[2 * n : 3 * n], c[3 * n :], strict=True)

    def is_empty(self) -> bool:
        return not any(self.scalars.values()) and not any(self.gaps.values()) and not self.has_records()

    def has_records(self) -> bool:
        """Whether it holds any user or model record."""
        return bool(self._user_hashes) or bool(self.models)

    # ---- records apart from the counters (an hour pack keeps running totals of them) --------

    def without_records(self) -> Bucket:
        """The scalars, active users and gap terms alone."""
        return Bucket(scalars=dict(self.scalars), gaps=dict(self.gaps), active_users=self.active_users)

    def with_records(self, totals: Totals) -> Bucket:
        """This bucket's scalars, active users and gap terms with the user and model records of
        `totals` (those that count nothing left out)."""
        hashes, columns = _user_columns(sorted((h, rec) for h, rec in totals.users.items() if any(rec)))
        models = {h: (rec[0], rec[1], rec[2], rec[3]) for h, rec in totals.models.items() if any(rec)}
        return Bucket(
            scalars=dict(self.scalars),
            gaps=dict(self.gaps),
            active_users=self.active_users,
            models=models,
            model_names={h: totals.model_names.get(h, h.hex()) for h in models},
            _user_hashes=hashes,
            _user_columns=columns,
        )

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
        hashes, columns = _user_columns(ordered)
        return Bucket(
            scalars={k: _checked(v) for k, v in scalars.items() if v},
            gaps={d: _checked(v) for d, v in gaps.items() if v},
            active_users=sum(1 for _, rec in ordered if rec[0] > 0),
            models={h: (_checked(r[0]), _checked(r[1]), _checked(r[2]), _checked(r[3])) for h, r in models.items()},
            model_names={h: n for h, n in model_names.items() if h in models},
            _user_hashes=hashes,
            _user_columns=columns,
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
        names = (
            json.dumps([self.model_names.get(h, h.hex()) for h, _ in models], separators=(",", ":")).encode()
            if models
            else b""  # no models, no names (most hours of a pack)
        )
        parts = [
            _HEADER.pack(MAGIC, len(gaps), len(models), len(names), len(self._user_hashes) // 8),
            _SCALARS.pack(*(self.scalars.get(name, 0) for name in SCALAR_ORDER), self.active_users),
            b"".join(_GAP.pack(d, v) for d, v in gaps),
            b"".join(MODEL_RECORD.pack(h, *rec) for h, rec in models),
            names,
            self._user_hashes,
            struct.pack(f"<{len(self._user_columns)}q", *self._user_columns),
        ]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, body: bytes) -> Bucket:
        try:
            magic, n_gaps, n_models, names_len, n_users = _HEADER.unpack_from(body)
            if magic not in (MAGIC, _RECORDS_MAGIC, _OLD_MAGIC):
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
            raw_names = body[offset : offset + names_len]
            names = json.loads(raw_names) if names_len and raw_names != b"[]" else []
            offset += names_len
            if not isinstance(names, list) or len(names) != n_models:
                raise CorruptBucket("rollup bucket's model names do not match its models")
            if magic == MAGIC:  # columns
                hashes = body[offset : offset + 8 * n_users]
                columns = struct.unpack_from(f"<{4 * n_users}q", body, offset + 8 * n_users)
            else:  # one record per user (TMR3, TMR2)
                hashes, columns = _user_columns([(h, rec) for h, *rec in USER_RECORD.iter_unpack(body[offset:])])
            return cls(
                scalars={name: v for name, v in zip(SCALAR_ORDER, values, strict=True) if v},
                gaps=gaps,
                active_users=active,
                models={r[0]: (r[1], r[2], r[3], r[4]) for r in records},
                model_names={r[0]: str(n) for r, n in zip(records, names, strict=True)},
                _user_hashes=hashes,
                _user_columns=columns,
            )
        except CorruptBucket:
            raise
        except (struct.error, ValueError, TypeError) as exc:
            raise CorruptBucket(f"damaged rollup bucket ({type(exc).__name__})") from exc
