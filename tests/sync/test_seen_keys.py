"""`shared_keys.SeenKeys` in the orders a drain run reads a primary key change in: the change topics
are partitioned by the whole key, so a row's changes under its old and new keys interleave freely."""

from __future__ import annotations

import orjson

from base_sync.shared_keys import NEW_KEY_HEADER, OLD_KEY_HEADER, SeenKeys, moved_key

D1, D2, D3 = '{"d":1}', '{"d":2}', '{"d":3}'


def see(seen: SeenKeys, op: str, whole: str, moved_from: str | None = None, moved_to: str | None = None):
    return seen.see("t", 7, whole, op == "d", created=op == "c", moved_from=moved_from, moved_to=moved_to)


def test_the_reviewers_order_a_create_of_the_new_key_before_the_old_keys_delete_is_one_row():
    seen = SeenKeys()
    assert see(seen, "u", D1) is None
    assert see(seen, "c", D2, moved_from=D1) is None
    assert see(seen, "d", D1, moved_to=D2) is None
    assert see(seen, "u", D2) is None
    assert not seen.shared


def test_a_late_update_of_the_old_key_after_the_move_is_one_row():
    """The old key's update and delete share a partition; the new key's create is read before both."""
    seen = SeenKeys()
    assert see(seen, "c", D2, moved_from=D1) is None
    assert see(seen, "u", D1) is None
    assert see(seen, "d", D1, moved_to=D2) is None
    assert see(seen, "u", D2) is None


def test_the_delete_with_the_new_key_read_first_is_one_row_too():
    seen = SeenKeys()
    assert see(seen, "u", D1) is None
    assert see(seen, "d", D1, moved_to=D2) is None
    assert see(seen, "u", D2) is None
    assert see(seen, "c", D2, moved_from=D1) is None
    assert see(seen, "u", D2) is None


def test_a_chain_of_moves_read_out_of_order_is_one_row():
    """(7, 1) to (7, 2) to (7, 3): the second move's create is read before anything of the first."""
    seen = SeenKeys()
    assert see(seen, "u", D1) is None
    assert see(seen, "c", D3, moved_from=D2) is None
    assert see(seen, "c", D2, moved_from=D1) is None
    assert see(seen, "u", D3) is None
    assert see(seen, "d", D1, moved_to=D2) is None
    assert see(seen, "d", D2, moved_to=D3) is None
    assert see(seen, "u", D3) is None


def test_two_rows_are_still_found_an_insert_beside_a_live_row_and_updates_of_both():
    inserted = SeenKeys()
    assert see(inserted, "c", D1) is None
    assert see(inserted, "c", D2) == (D1, D2)
    assert see(inserted, "u", D1) == (D1, D2), "the key stays shared for the rest of the run"
    updated = SeenKeys()
    assert see(updated, "u", D1) is None
    assert see(updated, "u", D2) == (D1, D2)


def test_an_insert_of_another_row_after_a_move_is_found():
    seen = SeenKeys()
    assert see(seen, "c", D2, moved_from=D1) is None
    assert see(seen, "c", D3) == (D2, D3)


def test_after_a_move_an_update_of_a_key_not_live_is_not_flagged():
    """A documented false negative: it may be an earlier key of the moving row, read late."""
    seen = SeenKeys()
    assert see(seen, "c", D2, moved_from=D1) is None
    assert see(seen, "u", D3) is None


def test_the_headers_name_the_other_whole_key_only_for_the_same_mapped_key():
    headers = [
        (OLD_KEY_HEADER, orjson.dumps({"id": 7, "d": 1})),
        (NEW_KEY_HEADER, b'{"schema":{},"payload":{"id":8,"d":1}}'),
    ]
    assert moved_key(headers, OLD_KEY_HEADER, "id", 7) == D1
    assert moved_key(headers, NEW_KEY_HEADER, "id", 7) is None, "the mapped key changed: a delete, no move"
    assert moved_key(headers, NEW_KEY_HEADER, "id", 8) == D1
    assert moved_key(None, OLD_KEY_HEADER, "id", 7) is None
    assert moved_key([(OLD_KEY_HEADER, b"Struct{id=7}")], OLD_KEY_HEADER, "id", 7) is None
