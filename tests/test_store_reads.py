"""The clip store reads each clip once per stage and flushes the filesystem once per batch."""
import errno
import os

import numpy as np
import pytest

from bench.generate import store as store_mod
from bench.generate.runner import check_resumable, generate_all, require_complete, store_summary
from bench.generate.store import ClipStore
from tests.fakes import SETTINGS, FakeMetric, FakeModel, plans


def _item(key, value, frames=True):
    return (key, {"key": key, "seed": 1}, {"x": np.full(3, value)},
            np.full((2, 4, 4, 3), int(value), dtype=np.uint8) if frames else None)


def test_each_stage_opens_each_clip_once(tmp_path):
    """Resume check, generate scan, completeness check, scoring reads and the store
    summary together open every clip file once, and never to hash frames."""
    p = plans()
    keys = [c.key for plan in p for c in plan.clips]
    generate_all(p, ClipStore(tmp_path), [FakeMetric()], SETTINGS, lambda _: FakeModel())
    store = ClipStore(tmp_path)
    check_resumable(p, store)
    summary = generate_all(p, store, [FakeMetric()], SETTINGS, lambda _: FakeModel())
    assert summary.skipped == len(keys) and summary.made == 0
    require_complete(p, store, ["fake/v1"])
    records = store.read_many(keys)
    store_summary(p, store)
    assert len(records) == len(keys) and all(r.features["fake/v1"].shape == (4, 3) for r in records.values())
    assert dict(store.reads) == {k: 1 for k in keys}


def test_a_file_replaced_by_another_writer_is_read_again(tmp_path):
    store, other = ClipStore(tmp_path), ClipStore(tmp_path)
    store.write_many([_item("a/1", 1.0), _item("a/2", 2.0)])
    assert store.read("a/1", with_frames=False).features["x"][0] == 1.0
    other.write(*_item("a/1", 5.0))               # another process (rank, shard job) replaces it
    assert store.read("a/1", with_frames=False).features["x"][0] == 5.0
    assert store.read("a/1").frames[0, 0, 0, 0] == 5   # frames are never served from memory
    assert store.reads["a/1"] == 3   # first read, after the replacement, for the frames
    store.path("a/2").unlink()
    assert store.read("a/2") is None


def test_a_batch_is_flushed_once_and_a_failed_flush_keeps_every_old_file(tmp_path, monkeypatch):
    store = ClipStore(tmp_path)
    store.write_many([_item(f"m/{i}", 1.0) for i in range(4)])
    assert store.flushes == 1
    calls = []

    def no_space(fd):
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.os, "fsync", no_space)
    with pytest.raises(OSError) as info:
        store.write_many([_item(f"m/{i}", 2.0) for i in range(4)])
    assert info.value.errno == errno.ENOSPC and calls
    monkeypatch.undo()
    fresh = ClipStore(tmp_path)
    assert [fresh.read(f"m/{i}").features["x"][0] for i in range(4)] == [1.0] * 4, "old clips intact"
    assert not list(tmp_path.rglob(".*.tmp*")), "temporaries removed"


def test_temporaries_of_a_killed_batch_are_removed_on_resume(tmp_path, monkeypatch):
    store = ClipStore(tmp_path)
    store.write_many([_item("k/0", 1.0)] * 1 + [_item("k/1", 1.0)])

    def killed():   # the process dies between writing the temporaries and the flush
        raise SystemExit(137)

    monkeypatch.setattr(store_mod, "_flush_filesystem", lambda path: killed())
    monkeypatch.setattr(store_mod.Path, "unlink", lambda *a, **k: None)   # no cleanup: a real kill runs none
    with pytest.raises(SystemExit):
        store.write_many([_item("k/0", 3.0), _item("k/1", 3.0)])
    monkeypatch.undo()
    assert len(list(tmp_path.rglob(".*.tmp*"))) == 2
    fresh = ClipStore(tmp_path)
    assert [fresh.read(f"k/{i}").features["x"][0] for i in range(2)] == [1.0, 1.0]
    # the temporaries' writer is this (live) process: pretend it died
    monkeypatch.setattr(store_mod, "_pid_alive", lambda pid: False)
    monkeypatch.setattr(store_mod.os, "getpid", lambda: -1)
    assert fresh.remove_temporaries() == 2 and not list(tmp_path.rglob(".*.tmp*"))
