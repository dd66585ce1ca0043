"""Where a partitioned load cuts a table: pure functions over key buckets, no server."""

from __future__ import annotations

import random

import pytest

from base_sync.key_ranges import KeyRange, bucket_size, even, nearly_gapless, split


def buckets_of(keys: list[int], size: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for key in keys:
        counts[key // size] = counts.get(key // size, 0) + 1
    return counts


def rows_in(ranges: list[KeyRange], keys: list[int]) -> list[int]:
    return [sum(1 for key in keys if r.low <= key <= r.high) for r in ranges]


def assert_contiguous_cover(ranges: list[KeyRange], keys: list[int]) -> None:
    assert ranges[0].low <= min(keys) and ranges[-1].high >= max(keys)
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert after.low == before.high + 1, f"gap or overlap between {before} and {after}"


def test_even_keys_split_into_equal_partitions():
    keys = list(range(1, 300_001))
    size = bucket_size(1, 300_000, 3)
    ranges = split(buckets_of(keys, size), size, 3)
    assert len(ranges) == 3
    assert_contiguous_cover(ranges, keys)
    for rows in rows_in(ranges, keys):
        assert abs(rows - 100_000) <= 100_000 / 32 + 1  # within one bucket of the quantile


def test_skewed_keys_cut_at_quantiles_not_at_the_middle_of_the_key_span():
    # Most early keys deleted: 1,000 keys spread over [1, 1e6), then 99,000 dense keys at the top.
    keys = list(range(1, 1_000_000, 1000)) + list(range(1_000_001, 1_099_001))
    size = bucket_size(min(keys), max(keys), 4)
    buckets = buckets_of(keys, size)
    ranges = split(buckets, size, 4)
    assert len(ranges) == 4
    assert_contiguous_cover(ranges, keys)
    rows = rows_in(ranges, keys)
    assert sum(rows) == len(keys)
    # Each within one bucket of its quarter (cutting the key span in four would put 99% in the last).
    for count in rows:
        assert abs(count - len(keys) / 4) <= max(buckets.values()), rows


def test_fewer_buckets_with_rows_than_partitions_gives_fewer_partitions_none_empty():
    keys = [5, 6, 7, 5_000, 5_001]
    ranges = split(buckets_of(keys, 1000), 1000, 8)
    assert ranges == [KeyRange(0, 999), KeyRange(1000, 5999)]
    assert all(rows > 0 for rows in rows_in(ranges, keys))
    assert_contiguous_cover(ranges, keys)


def test_one_partition_is_the_whole_span_and_no_rows_is_no_partition():
    assert split({3: 10, 7: 5}, 100, 1) == [KeyRange(300, 799)]
    assert split({}, 100, 4) == []
    assert split({2: 0}, 100, 4) == []


def test_bucket_size_gives_about_32_buckets_per_partition_and_at_least_one_key():
    assert bucket_size(1, 3_200_000, 4) == 25_000
    assert bucket_size(1, 10, 4) == 1


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError):
        split({1: 1}, 10, 0)
    with pytest.raises(ValueError):
        KeyRange(5, 4)
    assert KeyRange.from_json(KeyRange(3, 9).to_json()) == KeyRange(3, 9)


def test_a_nearly_gapless_key_is_cut_into_equal_widths_close_to_equal_rows():
    # 1,000,000 keys with 300 deleted at random: fewer missing than one bucket spans.
    rng = random.Random(7)
    gone = set(rng.sample(range(1, 1_000_001), 300))
    keys = [k for k in range(1, 1_000_001) if k not in gone]
    low, high, rows = min(keys), max(keys), len(keys)
    assert nearly_gapless(low, high, rows, 4)
    ranges = even(low, high, 4)
    assert len(ranges) == 4
    assert_contiguous_cover(ranges, keys)
    assert (ranges[0].low, ranges[-1].high) == (low, high)
    share, bucket = rows / 4, bucket_size(low, high, 4)
    assert all(abs(n - share) <= bucket for n in rows_in(ranges, keys))


def test_a_key_with_a_wide_gap_is_not_gapless_and_goes_to_the_buckets():
    keys = [*range(1, 1001), *range(900_001, 901_001)]  # two islands
    assert not nearly_gapless(min(keys), max(keys), len(keys), 4)


def test_even_gives_fewer_ranges_than_partitions_for_a_narrow_span_and_refuses_zero():
    assert even(5, 7, 4) == [KeyRange(5, 5), KeyRange(6, 6), KeyRange(7, 7)]
    assert even(1, 10, 1) == [KeyRange(1, 10)]
    with pytest.raises(ValueError):
        even(1, 10, 0)
