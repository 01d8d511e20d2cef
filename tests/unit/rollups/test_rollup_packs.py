"""A day of hours as one item (rollups.packs): what `split_day` stores gives back exactly the
hours it was given, and the records of any run of hours from two running totals equal the sum of
those hours' records."""

from __future__ import annotations

import random

import pytest

from tracemark_common.rollups.bucket import Bucket, CorruptBucket, Totals
from tracemark_common.rollups.deltas import BucketDelta
from tracemark_common.rollups.packs import (
    HOURS,
    decode_hours,
    encode_hours,
    hours_totals,
    join_day,
    running_total,
    split_day,
)

USERS = [f"{i:016x}" for i in range(1, 9)]
MODELS = ["00ff00ff00ff00ff", "0f0f0f0f0f0f0f0f"]


def _hour(rng: random.Random) -> Bucket:
    counters = {"sessions": rng.randint(0, 3), "tokens": rng.randint(0, 900), "lines": rng.randint(0, 40)}
    if rng.random() < 0.3:
        counters[f"g#{rng.randint(1, 30)}"] = -rng.randint(1, 9)
    for user in rng.sample(USERS, rng.randint(0, 4)):
        counters[f"us#{user}"] = rng.randint(-1, 3)  # a re-push can leave an hour below zero for a while
        counters[f"ua#{user}"] = rng.randint(0, 20)
        counters[f"ut#{user}"] = rng.randint(0, 10**9)
    strings = {}
    for model in rng.sample(MODELS, rng.randint(0, 2)):
        counters[f"ms#{model}"] = rng.randint(1, 3)
        counters[f"mc#{model}"] = rng.randint(0, 10**6)
        strings[f"mn#{model}"] = f"model-{model[:4]}"
    return Bucket().apply(BucketDelta(counters, strings))


def _day(rng: random.Random) -> dict[int, bytes]:
    hours = {h: _hour(rng) for h in rng.sample(range(HOURS), rng.randint(0, HOURS))}
    return {h: b.to_bytes() for h, b in hours.items() if not b.is_empty()}


def _key(totals: Totals) -> tuple[dict[bytes, list[int]], dict[bytes, list[int]]]:
    users = {h: rec for h, rec in totals.users.items() if any(rec)}
    models = {h: rec for h, rec in totals.models.items() if any(rec)}
    return users, models


@pytest.mark.parametrize("seed", range(40))
def test_a_split_day_joins_back_to_the_same_hours(seed: int) -> None:
    # Given a day of random hours (users, models, gap terms, negative counts, empty hours)
    hours = _day(random.Random(seed))
    # When it is stored and read back
    bare, totals = split_day(hours)
    # Then every hour is byte for byte what it was
    assert join_day(bare, totals) == hours
    # and the hours in `b` carry no records: those are in the running totals, one per hour from
    # the first hour that has records
    assert all(not Bucket.from_bytes(raw).has_records() for raw in decode_hours(bare).values())
    with_records = [h for h, raw in hours.items() if Bucket.from_bytes(raw).has_records()]
    if with_records:
        assert running_total(min(with_records)) in totals
        assert all(running_total(h) not in totals for h in range(min(with_records)))


@pytest.mark.parametrize("seed", range(10))
def test_any_run_of_hours_is_two_running_totals_apart(seed: int) -> None:
    hours = _day(random.Random(seed))
    bare, blobs = split_day(hours)
    stored = {h: Bucket.from_bytes(raw) for h, raw in decode_hours(bare).items()}
    totals = {name: Bucket.decode(blob) for name, blob in blobs.items()}
    full = {h: Bucket.from_bytes(raw) for h, raw in hours.items()}
    for first in range(HOURS):
        for last in range(first, HOURS):
            expected = Totals().add_all(full[h] for h in range(first, last + 1) if h in full)
            assert _key(hours_totals(stored, totals, first, last)) == _key(expected), (first, last)


def test_a_pack_of_the_previous_layout_reads_the_same() -> None:
    # Given a pack written before the running totals: the hours keep their own records
    hours = _day(random.Random(7))
    old = encode_hours(hours)
    stored = {h: Bucket.from_bytes(raw) for h, raw in decode_hours(old).items()}
    full = {h: Bucket.from_bytes(raw) for h, raw in hours.items()}
    # Then it joins back to the same hours and sums the same records
    assert join_day(old, {}) == hours
    expected = Totals().add_all(full.values())
    assert _key(hours_totals(stored, {}, 0, HOURS - 1)) == _key(expected)


@pytest.mark.parametrize(
    "blob, totals",
    [
        (b"not zlib", {}),
        (encode_hours({}), {"c03": b"not a bucket"}),
        (encode_hours({}), {"c03": Bucket().encode()[:-3]}),
    ],
)
def test_a_damaged_pack_is_a_clear_error(blob: bytes, totals: dict[str, bytes]) -> None:
    with pytest.raises(CorruptBucket):
        join_day(blob, totals)
