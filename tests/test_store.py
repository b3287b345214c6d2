"""The snapshot (escalator_handlers/store.py): state.json plus the journal
after it always folds to the same state as the whole journal."""

import json
import os

import pytest

from escalator_handlers import journal, store
from escalator_handlers.errors import EscalatorError
from planner_fixtures import T0, make_config


def event(n: int, host: str, state: str = "CRITICAL", service: str = "HTTP") -> dict:
    return {"time": T0 + n, "kind": "event", "host": host, "service": service, "state": state,
            "state_type": "HARD", "attempt": 1, "downtime": 0, "output": "", "id": f"id-{n}"}


@pytest.fixture
def cfg(tmp_path):
    return make_config(journal=str(tmp_path / "journal.jsonl"), spool=str(tmp_path / "spool"))


def fold_all(cfg) -> dict:
    """The state of the whole journal, with no snapshot at all."""
    if os.path.exists(cfg.state_path):
        os.unlink(cfg.state_path)
    return store.load(cfg).state.to_json()


def test_a_saved_snapshot_loads_back_and_covers_the_journal(cfg):
    journal.append(cfg.journal, [event(1, "web1"), event(2, "web2")])
    loaded = store.load(cfg)
    store.save(cfg, loaded.state, loaded.position)
    again = store.load(cfg)
    assert again.tail == [] and again.state.to_json() == loaded.state.to_json()
    assert again.position.offset == os.path.getsize(cfg.journal)


def test_records_written_after_the_snapshot_are_folded_on_load(cfg):
    journal.append(cfg.journal, [event(1, "web1")])
    loaded = store.load(cfg)
    store.save(cfg, loaded.state, loaded.position)
    journal.append(cfg.journal, [event(2, "web2"), event(3, "web1", "OK")])
    again = store.load(cfg)
    assert [r["host"] for r in again.tail] == ["web2", "web1"]
    assert again.state.to_json() == fold_all(cfg)


def test_a_lost_or_damaged_snapshot_is_rebuilt_from_the_journal(cfg):
    journal.append(cfg.journal, [event(1, "web1"), event(2, "web2")])
    loaded = store.load(cfg)
    store.save(cfg, loaded.state, loaded.position)
    whole = fold_all(cfg)                            # deletes state.json
    assert store.load(cfg).state.to_json() == whole
    with open(cfg.state_path, "w") as f:
        f.write('{"journal": {"dev": 1, ')          # torn by a crash of something else
    assert store.load(cfg).state.to_json() == whole


def test_load_follows_the_journal_across_one_logrotate_rename(cfg):
    journal.append(cfg.journal, [event(1, "web1")])
    loaded = store.load(cfg)
    store.save(cfg, loaded.state, loaded.position)
    journal.append(cfg.journal, [event(2, "web2")])     # after the snapshot, before rotation
    os.rename(cfg.journal, cfg.journal + ".1")
    journal.append(cfg.journal, [event(3, "web3")])     # the new journal
    again = store.load(cfg)
    assert [r["host"] for r in again.tail] == ["web2", "web3"]
    assert again.position.ino == os.stat(cfg.journal).st_ino


def test_recent_records_are_the_last_ones_of_the_kinds_asked_for(cfg):
    journal.append(cfg.journal, [event(n, f"web{n}") for n in range(30)]
                   + [{"time": T0 + 40, "kind": "pause", "reason": "x"}])
    got = store.recent_records(cfg, ("event",), limit=5)
    assert [r["host"] for r in got] == [f"web{n}" for n in range(25, 30)]
    assert store.recent_records(cfg, ("pause",))[0]["reason"] == "x"
    assert store.recent_records(make_config(journal=cfg.journal + ".missing"), ("event",)) == []


def test_a_snapshot_that_cannot_be_written_is_an_error_and_leaves_no_temporary_file(cfg, tmp_path):
    loaded = store.load(cfg)
    os.makedirs(cfg.state_path)                     # a directory where the file must go
    with pytest.raises(EscalatorError, match="cannot write state snapshot"):
        store.save(cfg, loaded.state, loaded.position)
    assert [p.name for p in tmp_path.iterdir() if ".tmp." in p.name] == []
    assert json.loads(json.dumps(loaded.state.to_json()))    # the state itself is fine
