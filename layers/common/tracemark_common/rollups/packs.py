"""A day of hourly buckets stored as one item: the layout, pure (no AWS).

A `24h` dashboard reads 48 hours. Reading 48 hourly buckets costs in proportion to how many users
each hour counts (an hour of a busy organisation holds dozens of users' records, a quiet one's
none), so the hours' user and model records are kept as running totals instead:

- `b`: one zlib stream of (hour, length, bytes) for each hour with counters: that hour's `Bucket`
  *without* its user and model records (scalars, active users, gap terms), for the per-hour
  series and the period's scalars.
- `cHH` (`c00` to `c23`): the user and model records summed over hours 00 to HH of the day (a
  `Bucket` of records only, compressed), for every hour from the first that has records.

So the users and models of hours a..b of a day are `c{b} - c{a-1}` (`c{-1}` is nothing): a `24h`
query reads at most two running totals per day, each no longer than the day's list of users,
whatever the number of sessions. A pack written before this layout kept the records in the hours
of `b` and has no `cHH`; `Totals` sums whatever records the hours hold, so it reads the same.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

from tracemark_common.rollups.bucket import Bucket, CorruptBucket, Totals

HOURS = 24
_HOUR_ENTRY = struct.Struct("<BI")  # hour of day, length of that hour's Bucket bytes


def running_total(hour: int) -> str:
    """The attribute that holds the records summed over hours 00..`hour`."""
    return f"c{hour:02d}"


RUNNING_TOTALS = tuple(running_total(h) for h in range(HOURS))


def encode_hours(hours: Mapping[int, bytes]) -> bytes:
    """One compressed stream of the hours' uncompressed buckets (`Bucket.to_bytes`)."""
    return zlib.compress(b"".join(_HOUR_ENTRY.pack(h, len(raw)) + raw for h, raw in sorted(hours.items()) if raw), 6)


def decode_hours(packed: bytes) -> dict[int, bytes]:
    """hour -> that hour's uncompressed bucket bytes."""
    hours: dict[int, bytes] = {}
    offset = 0
    try:
        blob = zlib.decompress(packed) if packed else b""
        while offset < len(blob):
            hour, length = _HOUR_ENTRY.unpack_from(blob, offset)
            offset += _HOUR_ENTRY.size
            if hour >= HOURS or offset + length > len(blob):
                raise CorruptBucket("damaged hour pack")
            hours[hour] = blob[offset : offset + length]
            offset += length
    except (struct.error, zlib.error) as exc:
        raise CorruptBucket("damaged hour pack") from exc
    return hours


def split_day(hours: Mapping[int, bytes]) -> tuple[bytes, dict[str, bytes]]:
    """The stored form of a day's full hourly buckets (uncompressed `Bucket` bytes by hour): the
    `b` blob of hours without records, and the running totals by attribute name."""
    bare: dict[int, bytes] = {}
    running = Totals()
    totals: dict[str, bytes] = {}
    for hour in range(HOURS):
        raw = hours.get(hour)
        if raw:
            bucket = Bucket.from_bytes(raw)
            scalars = bucket.without_records()
            if not scalars.is_empty():
                bare[hour] = scalars.to_bytes()
            running.add(bucket)
        if not running.is_empty():
            totals[running_total(hour)] = Bucket().with_records(running).encode()
    return encode_hours(bare), totals


def join_day(blob: bytes, totals: Mapping[str, bytes]) -> dict[int, bytes]:
    """The day's full hourly buckets again (what `split_day` was given), from `b` and every
    running total: an hour's records are its running total less the hour before's."""
    hours = decode_hours(blob)
    result: dict[int, bytes] = {}
    previous = Totals()
    for hour in range(HOURS):
        raw = hours.get(hour)
        bucket = Bucket.from_bytes(raw) if raw else Bucket()
        stored = totals.get(running_total(hour))
        current = Totals().add_all([Bucket.decode(stored)]) if stored else Totals()
        if stored or not previous.is_empty():
            bucket = bucket.with_records(current.difference(previous))
        previous = current
        if not bucket.is_empty():
            result[hour] = bucket.to_bytes()
    return result


def hours_totals(
    hours: Mapping[int, Bucket], totals: Mapping[str, Bucket], first: int, last: int, into: Totals | None = None
) -> Totals:
    """Users' and models' records over hours `first`..`last` of one day (added to `into`): the
    running totals' difference, plus whatever records the hours themselves hold (a pack of the
    old layout)."""
    result = Totals() if into is None else into
    result.add_all(hours[h] for h in range(first, last + 1) if h in hours and hours[h].has_records())
    end = totals.get(running_total(last))
    if end is not None:
        result.add(end)
    start = totals.get(running_total(first - 1)) if first > 0 else None
    if start is not None:
        result.add(start, -1)
    return result
