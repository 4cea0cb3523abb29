"""Clip specs, seeds, keys and the atomic clip store."""
import numpy as np
import pytest

from bench.generate.store import ClipStore
from bench.plan.prompts import UCF101_CLASSES, classname_captions, load_prompt_set, parse_caption_file
from bench.plan.protocol import clip_key, clip_seed, expand
from tests.conftest import OFFICIAL_CAPTIONS, official_captions_or_skip


def test_seeds_are_shared_across_methods_and_nfe():
    prompts = classname_captions().subset(num_classes=2)
    specs = expand(["ddim", "animatelcm"], [1, 4], prompts, 3, base_seed=0)
    assert len(specs) == 2 * 2 * 2 * 3
    by_sample = {}
    for s in specs:
        by_sample.setdefault(s.sample_key, set()).add(s.seed)
    assert all(len(seeds) == 1 for seeds in by_sample.values())
    assert len({next(iter(v)) for v in by_sample.values()}) == len(by_sample)   # distinct per (prompt, video)
    assert clip_seed(0, "Archery", 1) != clip_seed(1, "Archery", 1)
    assert len({s.key for s in specs}) == len(specs)
    assert specs[0].key == clip_key(specs[0].method, specs[0].nfe, specs[0].class_name, specs[0].video_index)


def test_bad_protocol_values_are_refused():
    with pytest.raises(ValueError, match="nfe"):
        expand(["ddim"], [0], classname_captions(), 1, 0)
    with pytest.raises(ValueError, match="Unknown UCF-101 class"):
        classname_captions().subset(["Guitar"])


def test_caption_pin_is_the_official_files_commit_and_hash():
    """The pinned commit and sha256 name the same file (c7e8a60's; c741a89's hashes to 47ec7b5e...)."""
    import hashlib

    from bench.plan import prompts

    official_captions_or_skip()
    assert hashlib.sha256(OFFICIAL_CAPTIONS.read_bytes()).hexdigest() == prompts.OFFICIAL_CAPTIONS_SHA256
    assert prompts.OFFICIAL_CAPTIONS_COMMIT == "c7e8a6027167b8e24a66b17737da4151072dadcd"
    assert f"/{prompts.OFFICIAL_CAPTIONS_COMMIT}/metrics/UCF101_prompts.yaml" in prompts.OFFICIAL_CAPTIONS_URL


def test_official_caption_file_parses_to_our_class_list():
    official_captions_or_skip()
    ps = load_prompt_set("official", str(OFFICIAL_CAPTIONS))
    assert ps.classes == UCF101_CLASSES and len(ps.captions) == 101
    assert ps.captions[0] == "A girl applying eye makeup."


def test_wrong_caption_files_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="expected the 101 UCF-101 classes"):
        parse_caption_file("ApplyEyeMakeup: A girl.\n")
    with pytest.raises(ValueError, match="expected 'ClassName: caption.'"):
        parse_caption_file("just a line without a colon\n")
    bad = tmp_path / "captions.yaml"
    bad.write_text("# header\n" + "\n".join(f"{c}: caption." for c in UCF101_CLASSES))
    with pytest.raises(ValueError, match="sha256"):
        load_prompt_set("official", str(bad))
    assert load_prompt_set("file", str(bad)).captions[0] == "caption."


def test_store_round_trip_and_integrity(tmp_path):
    store = ClipStore(tmp_path / "store")
    frames = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    key = "animatelcm/nfe4/Archery/000"
    store.write(key, {"key": key, "seed": 1}, {"fvd/x": np.arange(3.0)}, frames)
    record = store.read(key)
    assert record.meta["seed"] == 1 and np.array_equal(record.frames, frames)
    assert np.array_equal(record.features["fvd/x"], np.arange(3.0))
    assert store.keys() == [key]
    # a torn file (e.g. a copy cut short) is detected, not read as a clip
    path = store.path(key)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert store.read(key) is None and store.corrupt == [key]
    # temporaries of a killed writer are never listed and are cleaned up
    (path.parent / f".{path.name}.tmp123").write_bytes(b"partial")
    assert store.keys() == [key] and store.remove_temporaries() == 1
