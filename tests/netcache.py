"""Test helpers shared by the offline, preflight and prefetch tests: a recorder that
refuses every network attempt, and files planted in the huggingface_hub cache layout."""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import List, Tuple


def refuse_network(monkeypatch) -> List[Tuple[str, str]]:
    """Every attempt to open a connection or resolve a name is recorded, then refused
    with an OSError. Returns the (list of) attempts."""
    attempts: List[Tuple[str, str]] = []

    def record(name):
        def refuse(*args, **kwargs):
            attempts.append((name, repr(args[1:3] if name.startswith("connect") else args[:2])))
            raise OSError(f"test: {name} refused")
        return refuse

    monkeypatch.setattr(socket.socket, "connect", record("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", record("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", record("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", record("getaddrinfo"))
    return attempts


def put_hub_file(cache: Path, repo: str, rel: str, data: bytes, commit: str = "c" * 40) -> Path:
    """One file in the huggingface_hub cache layout: a blob named by its Hub checksum
    (sha256 for LFS files, git's blob sha1 otherwise), the snapshot symlink, refs/main."""
    repo_dir = Path(cache) / ("models--" + repo.replace("/", "--"))
    lfs = rel.endswith((".safetensors", ".bin", ".pt", ".ckpt"))
    etag = hashlib.sha256(data).hexdigest() if lfs else \
        hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
    blob = repo_dir / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    link = repo_dir / "snapshots" / commit / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(os.path.relpath(blob, link.parent), link)
    return link
