"""The journal (escalator_handlers/journal.py): durable appends, and reads that
survive what a crash or a hand edit leaves behind."""

import os

import pytest

from escalator_handlers import journal
from escalator_handlers.errors import EscalatorError


def rec(n: int, **extra) -> dict:
    return {"time": 1000.0 + n, "kind": "event", "host": f"web{n}", **extra}


def read_all(path, offset: int = 0, stats=None) -> list:
    return [r for _, r in journal.read(str(path), offset, stats)]


def test_appended_records_read_back_in_order_with_end_offsets(tmp_path):
    path = tmp_path / "j" / "journal.jsonl"          # the directory is created
    end = journal.append(str(path), [rec(1), rec(2)])
    assert end == path.stat().st_size
    got = list(journal.read(str(path)))
    assert [r["host"] for _, r in got] == ["web1", "web2"]
    assert got[-1][0] == end and got[0][0] < end
    assert journal.append(str(path), [rec(3)]) > end
    # reading from an offset yields only what was written after it
    assert [r["host"] for r in read_all(path, end)] == ["web3"]


def test_hostile_text_is_stored_as_ascii_one_line_a_record(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal.append(str(path), [rec(1, output="é\nforged line\x1b[31m")])
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.isascii()
    assert read_all(path)[0]["output"] == "é\nforged line\x1b[31m"


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_on_a_line_of_its_own(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal.append(str(path), [rec(1)])
    with open(path, "ab") as f:
        f.write(b'{"time": 1002.0, "kind": "ev')          # a crash mid-append
    stats = journal.ReadStats()
    assert [r["host"] for r in read_all(path, 0, stats)] == ["web1"] and stats.corrupt == 1
    journal.append(str(path), [rec(3)])
    assert [r["host"] for r in read_all(path)] == ["web1", "web3"]


def test_a_whole_last_record_without_its_newline_is_a_record(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(journal.dumps(rec(1)).encode())   # no newline
    assert [r["host"] for r in read_all(path)] == ["web1"]
    journal.append(str(path), [rec(2)])
    assert [r["host"] for r in read_all(path)] == ["web1", "web2"]


def test_unreadable_lines_in_the_middle_are_counted_not_fatal(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal.append(str(path), [rec(1)])
    with open(path, "ab") as f:
        f.write(b"not json\n[1, 2]\n{\"no\": \"kind\"}\n")
    journal.append(str(path), [rec(2)])
    stats = journal.ReadStats()
    assert [r["host"] for r in read_all(path, 0, stats)] == ["web1", "web2"]
    assert stats.corrupt == 3


def test_a_missing_journal_reads_as_empty_and_an_empty_append_writes_nothing(tmp_path):
    path = tmp_path / "journal.jsonl"
    assert read_all(path) == []
    assert journal.append(str(path), []) == 0 and not path.exists()
    assert journal.identity(str(path)) is None


def test_identity_changes_when_logrotate_renames_the_journal(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal.append(str(path), [rec(1)])
    before = journal.identity(str(path))
    os.rename(path, str(path) + ".1")
    journal.append(str(path), [rec(2)])
    assert journal.identity(str(path)) != before
    assert journal.identity(str(path) + ".1") == before


def test_a_journal_that_cannot_be_opened_is_an_error_with_its_path(tmp_path):
    os.symlink(tmp_path / "elsewhere", tmp_path / "journal.jsonl")   # O_NOFOLLOW refuses it
    with pytest.raises(EscalatorError, match="cannot open journal .*journal.jsonl"):
        journal.append(str(tmp_path / "journal.jsonl"), [rec(1)])
    assert not (tmp_path / "elsewhere").exists()
