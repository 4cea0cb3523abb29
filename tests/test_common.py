"""common/: the one sha256, atomic write, did-you-mean and environment-flag helpers."""
import hashlib
import os

import pytest

from common.files import MAX_NAME_BYTES, atomic_path, installed_file, package_file, sha256_file, write_atomic
from common.names import closest, did_you_mean, env_flag


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_atomic(target, "{}\n")
    write_atomic(target, b"[1]\n")
    assert target.read_bytes() == b"[1]\n" and sha256_file(target) == hashlib.sha256(b"[1]\n").hexdigest()
    assert os.listdir(target.parent) == ["a.json"] and oct(target.stat().st_mode)[-3:] == "644"


def test_atomic_path_removes_its_temporary_on_failure_and_handles_folders_and_long_names(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert os.listdir(tmp_path) == []
    with atomic_path(tmp_path / "folder") as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("1")
    assert (tmp_path / "folder" / "x").read_text() == "1"
    long = "a" * (MAX_NAME_BYTES - 4) + ".mp4"        # as long as a file name may be
    with atomic_path(tmp_path / long, ".mp4") as tmp:
        assert len(tmp.name.encode()) <= MAX_NAME_BYTES and tmp.name.endswith(".tmp.mp4")
        tmp.write_bytes(b"v")
    assert (tmp_path / long).read_bytes() == b"v"


def test_names_and_flags():
    assert closest("batchsize", ["batch_size", "seed"]) == "batch_size"
    assert did_you_mean("tabel1", ["table1", "smoke"]) == " Did you mean 'table1'?"
    assert did_you_mean("zzz", ["table1"]) == ""
    for value, expected in (("1", True), ("yes", True), ("ON", True), ("0", False), ("", False), ("no", False)):
        os.environ["LCMBENCH_TEST_FLAG"] = value
        assert env_flag("LCMBENCH_TEST_FLAG") is expected
    del os.environ["LCMBENCH_TEST_FLAG"]


def test_package_file_finds_data_without_importing_the_package():
    assert package_file("no_such_package_xyz", "x") is None
    bpe = package_file("open_clip", "bpe_simple_vocab_16e6.txt.gz")
    assert bpe is not None and bpe.is_file()


def test_installed_file_says_what_to_install():
    with pytest.raises(FileNotFoundError, match="'no_such_package_xyz' package is not installed: pip install it"):
        installed_file("no_such_package_xyz", "data.bin", "pip install it")
    with pytest.raises(FileNotFoundError, match="is missing: the open_clip install is incomplete; reinstall"):
        installed_file("open_clip", "no-such-file.txt", "reinstall")
