"""The binary bucket form: round trips, and damaged or hostile bytes are a clear error."""

from __future__ import annotations

import struct
import zlib

import pytest

from tracemark_common.rollups.bucket import MAGIC, Bucket, CorruptBucket
from tracemark_common.rollups.deltas import BucketDelta

U1, U2, M1 = "0123456789abcdef", "fedcba9876543210", "00ff00ff00ff00ff"


def _bucket() -> Bucket:
    delta = BucketDelta(
        {"sessions": 3, "tokens": 90, "lines": 40, "g#3": -10, f"us#{U1}": 2, f"ua#{U1}": 5, f"us#{U2}": 1,
         f"uc#{U2}": 7, f"ms#{M1}": 3, f"mt#{M1}": 90},
        {f"un#{U1}": "ana@example.com", f"uk#{U1}": "user", f"un#{U2}": "ci-bot", f"uk#{U2}": "service",
         f"mn#{M1}": "claude-opus-4-6"},
    )  # fmt: skip
    return Bucket().apply(delta)


def test_round_trip_keeps_every_number_and_model_name() -> None:
    bucket = Bucket.decode(_bucket().encode())
    assert bucket.scalars == {"sessions": 3, "tokens": 90, "lines": 40}
    assert bucket.gaps == {3: -10}
    assert sorted(bucket.user_records()) == [
        (bytes.fromhex(U1), 2, 5, 0, 0),
        (bytes.fromhex(U2), 1, 0, 0, 7),
    ]
    assert bucket.models == {bytes.fromhex(M1): (3, 90, 0, 0)}
    assert bucket.model_names == {bytes.fromhex(M1): "claude-opus-4-6"}
    assert bucket.active_users == 2


def test_applying_the_opposite_delta_empties_the_bucket() -> None:
    bucket = _bucket()
    opposite = BucketDelta({name: -value for name, value in _counters(bucket).items()})
    assert bucket.apply(opposite).is_empty()


def _counters(bucket: Bucket) -> dict[str, int]:
    result = {f"g#{d}": v for d, v in bucket.gaps.items()} | dict(bucket.scalars)
    for ident, sessions, ai, tokens, cost in bucket.user_records():
        for prefix, value in (("us#", sessions), ("ua#", ai), ("ut#", tokens), ("uc#", cost)):
            if value:
                result[prefix + ident.hex()] = value
    for ident, (sessions, tokens, cost, unpriced) in bucket.models.items():
        for prefix, value in (("ms#", sessions), ("mt#", tokens), ("mc#", cost), ("mu#", unpriced)):
            if value:
                result[prefix + ident.hex()] = value
    return result


def _header(gaps: int = 0, models: int = 0, names: int = 0, users: int = 0, magic: bytes = MAGIC) -> bytes:
    return struct.pack("<4sHHII", magic, gaps, models, names, users)


_SCALARS = struct.pack("<10q", *range(10))


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"not zlib at all",
        zlib.compress(b"TMR2"),
        zlib.compress(_header(magic=b"TMR1") + _SCALARS),
        zlib.compress(_header(magic=b"TMR2") + _SCALARS),  # the older layout has one scalar fewer
        zlib.compress(_header() + _SCALARS + b"extra"),
        zlib.compress(_header(users=1) + _SCALARS + b"12345"),
        zlib.compress(_header(gaps=2) + _SCALARS + struct.pack("<Hq", 1, 5)),
        zlib.compress(_header(models=1, names=3) + _SCALARS + struct.pack("<8sqqqq", b"m" * 8, 1, 2, 3, 0) + b"[1"),
        zlib.compress(_header(models=1, names=2) + _SCALARS + struct.pack("<8sqqqq", b"m" * 8, 1, 2, 3, 0) + b"[]"),
        zlib.compress(_header(models=0, names=2) + _SCALARS + b"{}"),
    ],
)
def test_damaged_bytes_are_a_corrupt_bucket(blob: bytes) -> None:
    with pytest.raises(CorruptBucket):
        Bucket.decode(blob)


def test_unknown_counter_names_and_bad_hashes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rollup counter"):
        Bucket().apply(BucketDelta({"surprise": 1}))
    with pytest.raises(ValueError, match="16-hex-digit"):
        Bucket().apply(BucketDelta({"us#not-hex": 1}))


def test_counters_beyond_64_bits_are_refused_not_wrapped() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        Bucket().apply(BucketDelta({"tokens": 2**63})).encode()


def test_a_bucket_in_the_previous_layout_still_reads() -> None:
    # TMR2: eight scalars and the active users, model records without the unpriced count
    body = (
        _header(models=1, names=6, users=1, magic=b"TMR2")
        + struct.pack("<9q", 4, 100, 60, 40, 2000, 7, 30, 1, 2)
        + struct.pack("<8sqqq", b"m" * 8, 4, 100, 2000)
        + b'["m1"]'
        + struct.pack("<8sqqqq", b"u" * 8, 4, 7, 100, 2000)
    )
    bucket = Bucket.decode(zlib.compress(body))
    assert bucket.num("sessions") == 4 and bucket.num("prs") == 1 and bucket.num("unpriced_sessions") == 0
    assert bucket.active_users == 2
    assert bucket.models == {b"m" * 8: (4, 100, 2000, 0)} and bucket.model_names == {b"m" * 8: "m1"}
    assert list(bucket.user_records()) == [(b"u" * 8, 4, 7, 100, 2000)]


def test_a_bucket_with_one_record_per_user_still_reads() -> None:
    # TMR3: the users as one (hash, sessions, AI lines, tokens, cost) record each, not columns
    body = (
        _header(users=2, magic=b"TMR3")
        + struct.pack("<10q", 5, 100, 60, 40, 2000, 7, 30, 1, 0, 2)
        + struct.pack("<8sqqqq", b"a" * 8, 4, 7, 100, 2000)
        + struct.pack("<8sqqqq", b"b" * 8, 1, 0, 3, 9)
    )
    bucket = Bucket.decode(zlib.compress(body))
    assert list(bucket.user_records()) == [(b"a" * 8, 4, 7, 100, 2000), (b"b" * 8, 1, 0, 3, 9)]
    # and it is written back in the current layout, with the same numbers
    again = Bucket.decode(bucket.encode())
    assert zlib.decompress(bucket.encode())[:4] == MAGIC
    assert list(again.user_records()) == list(bucket.user_records()) and again.scalars == bucket.scalars


@pytest.mark.parametrize("seed", range(8))
def test_totals_equal_a_plain_sum_of_the_records(seed: int) -> None:
    import random

    from tracemark_common.rollups.bucket import Totals

    # Given buckets of which many count exactly the same users (summed column-wise), some
    # subtracted, and model records
    rng = random.Random(seed)
    users = [f"{i:016x}" for i in range(1, 12)]
    same = rng.sample(users, 5)
    buckets = []
    for _ in range(30):
        chosen = same if rng.random() < 0.6 else rng.sample(users, rng.randint(1, 8))
        counters = {f"{p}{u}": rng.randint(1, 10**6) for u in chosen for p in ("us#", "ua#", "ut#", "uc#")}
        counters[f"ms#{M1}"] = rng.randint(1, 5)
        buckets.append((Bucket().apply(BucketDelta(counters, {f"mn#{M1}": "m"})), rng.choice([1, 1, -1])))
    totals = Totals()
    expected_users: dict[bytes, list[int]] = {}
    expected_models: dict[bytes, list[int]] = {}
    for bucket, sign in buckets:
        totals.add(bucket, sign)
        for ident, *values in bucket.user_records():
            row = expected_users.setdefault(ident, [0, 0, 0, 0])
            for i, v in enumerate(values):
                row[i] += sign * v
        for ident, values in bucket.models.items():
            row = expected_models.setdefault(ident, [0, 0, 0, 0])
            for i, v in enumerate(values):
                row[i] += sign * v
    # Then the totals are the plain sums, however they were grouped
    assert totals.users == expected_users
    assert totals.models == expected_models and totals.model_names == {bytes.fromhex(M1): "m"}
    # and adding after reading still counts everything once
    first = buckets[0][0]
    totals.add(first)
    for ident, *values in first.user_records():
        assert totals.users[ident] == [a + b for a, b in zip(expected_users[ident], values, strict=True)]
