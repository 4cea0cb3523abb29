"""The one place that checks the files a run reads: the Hub repos and local paths the
methods' weights come from (declared in ``models/files.py``) and the metrics' Hub files
(declared by each metric plug-in's ``files()``). Preflight checks these needs, prefetch
fetches them; both read the same list."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from huggingface_hub import try_to_load_from_cache

from bench.plan import checkpoints
from bench.plan.config import get, plain
from bench.preflight.report import AssetCheck, Problem
from metrics.plugin import FileNeed
from models.files import local_files, method_files
from models.registry import resolve_spec
from models.schedulers import resolve_sampler
from models.specs import ModelSpec, SamplerSpec
from common.files import sha256_file
from models.weights import looks_local


def git_blob_sha1(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The git object id of a file (what the Hub uses as etag for non-LFS files)."""
    h = hashlib.sha1()
    h.update(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_hub_blob(path: str | os.PathLike) -> Optional[str]:
    """Compare a cached Hub file with its blob name (sha256 for LFS files, git sha1
    otherwise). Returns None when it matches, else what is wrong."""
    blob = Path(os.path.realpath(path))
    name = blob.name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        actual = sha256_file(blob)
    elif re.fullmatch(r"[0-9a-f]{40}", name):
        actual = git_blob_sha1(blob)
    else:
        return None   # not a content-addressed blob (e.g. a local copy): nothing to compare with
    return None if actual == name else f"{blob} has checksum {actual}, its Hub checksum is {name}"


@dataclass
class HubNeed:
    repo: str
    revision: Optional[str]
    groups: List[Tuple[str, ...]]
    users: List[str]
    small: Tuple[str, ...] = ()      # patterns of small files prefetch takes along

    def add(self, groups: Sequence[Tuple[str, ...]], user: str, small: Sequence[str] = ()) -> None:
        for g in groups:
            if tuple(g) not in self.groups:
                self.groups.append(tuple(g))
        if user not in self.users:
            self.users.append(user)
        self.small = tuple(dict.fromkeys(tuple(self.small) + tuple(small)))


@dataclass
class LocalNeed:
    path: str
    groups: List[Tuple[str, ...]]    # files inside a folder; empty for a single file
    users: List[str]
    sha256: Optional[str] = None


@dataclass
class Needs:
    hub: Dict[Tuple[str, Optional[str]], HubNeed] = field(default_factory=dict)
    local: List[LocalNeed] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    specs: Dict[str, Any] = field(default_factory=dict)   # method -> resolved ModelSpec

    def ref(self, ref: str, groups: Sequence[Tuple[str, ...]], user: str, revision: Optional[str],
            small: Sequence[str] = ()) -> None:
        if looks_local(ref):
            p = os.path.expanduser(ref)
            for need in self.local:
                if need.path == p:
                    need.groups += [g for g in groups if g not in need.groups]
                    need.users.append(user)
                    return
            self.local.append(LocalNeed(p, list(groups), [user]))
            return
        key = (ref, revision)
        if key not in self.hub:
            self.hub[key] = HubNeed(ref, revision, [], [])
        self.hub[key].add(groups, user, small)


def resolved_specs(cfg: Any) -> Tuple[Dict[str, Any], List[Problem]]:
    """method -> resolved ModelSpec (registry defaults filled in), and the problems."""
    specs, problems = {}, []
    methods = get(cfg, "methods", {}) or {}
    if not len(methods) and not checkpoints.wanted(cfg):   # else preflight says which checkpoints are missing
        problems.append(Problem("config", "The experiment lists no methods.",
                                "Add one, e.g. '+model@methods.animatelcm=animatelcm'."))
    for name in methods:
        data = dict(plain(methods[name]))
        try:
            sampler = SamplerSpec(**(data.pop("sampler", None) or {}))
            spec = resolve_spec(ModelSpec(**data, sampler=sampler))
            resolve_sampler(spec.sampler)
        except (ValueError, TypeError) as err:
            problems.append(Problem("config", f"methods.{name}: {err}",
                                    f"Fix methods.{name} in the experiment file or on the command line."))
            continue
        specs[name] = spec
    return specs, problems


def weight_needs(cfg: Any) -> Needs:
    """Every Hub repo / local path the methods' weights come from. Tiny and random weights
    are built from config and read no Hub file, but every local path a method names must
    exist in every weight mode (``models.files.local_files``)."""
    needs = Needs()
    needs.specs, needs.problems = resolved_specs(cfg)
    weights = get(cfg, "weights")
    nfes = list(get(cfg.protocol, "nfe") or [])
    unsafe = bool(get(get(cfg, "runner", {}), "allow_unsafe_pickle", False))
    for name, spec in needs.specs.items():
        if weights == "pretrained":
            files, problems = method_files(name, spec, nfes, unsafe)
        else:
            files, problems = local_files(name, spec, str(weights), nfes, unsafe)
        for f in files:
            needs.ref(f.ref, f.groups, f.field, f.revision, f.small)
        needs.problems += [Problem(p.area, p.what, p.fix) for p in problems]
    return needs


def metric_hub_needs(needs: Needs, files: Mapping[str, Sequence[FileNeed]]) -> Dict[Tuple[str, Optional[str]], FileNeed]:
    """Add the Hub files among the metrics' declared ``files`` ({metric: its files}) to
    ``needs``, used by ``metrics.<name>``. Returns the declaration behind each Hub key it
    added (its setting names the fix)."""
    added: Dict[Tuple[str, Optional[str]], FileNeed] = {}
    for name, declared in files.items():
        for need in declared:
            if need.hub is None:
                continue
            repo, groups, revision, small = need.hub
            needs.ref(repo, [tuple(g) for g in groups], f"metrics.{name}", revision, small)
            added.setdefault((repo, revision), need)
    return added


def prefetch_fix(cfg: Any) -> str:
    return (f"On a machine with network run `python -m bench.prefetch experiment={get(cfg, 'experiment', '...')}`"
            f" and copy its Hugging Face cache here (HF_HOME / HF_HUB_CACHE)")


def check_hub(need: HubNeed, cache: str, verify: bool, cfg: Any) -> Tuple[AssetCheck, List[Problem]]:
    found: List[str] = []
    missing: List[str] = []
    for group in need.groups:
        hit = None
        for name in group:
            path = try_to_load_from_cache(need.repo, name, cache_dir=cache, revision=need.revision)
            if isinstance(path, str) and os.path.isfile(path):
                hit = path
                break
        if hit:
            found.append(hit)
        else:
            missing.append(" or ".join(group))
    size = sum(os.path.getsize(p) for p in found)
    label = need.repo + (f"@{need.revision}" if need.revision else "")
    users = ", ".join(need.users)
    problems: List[Problem] = []
    status, detail = "ok", f"{len(found)} files"
    if missing:
        status = "missing"
        if found:
            shown = ", ".join(missing[:4]) + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else "")
            detail = f"missing {shown}"
            what = f"is incomplete in the Hugging Face cache {cache}: missing {shown}"
        else:
            n = len(need.groups)
            detail = f"not cached ({n} file{'s' if n != 1 else ''} needed)"
            what = f"is not in the Hugging Face cache {cache}"
            if n <= 6:   # few enough to name: the step-specific or adapter files a user fetches by hand
                detail = f"not cached ({n} file{'s' if n != 1 else ''} needed: {', '.join(missing)})"
                what += f" (needed: {', '.join(missing)})"
        problems.append(Problem("weights", f"'{label}' ({users}) {what}.",
                                prefetch_fix(cfg) + f", or point {_fields_hint(need.users)} at a local copy."))
    if verify:
        for path in found:
            bad = check_hub_blob(path)
            if bad:
                status = "corrupt"
                problems.append(Problem("weights", f"'{label}': {bad}.",
                                        f"Delete {os.path.realpath(path)} and fetch it again "
                                        f"(`python -m bench.prefetch ...`)."))
    location = _snapshot_root(found[0]) if found else cache
    return AssetCheck("weights", label, need.repo, status, location, size or None, None,
                      f"{detail}; used by {users}"), problems


def _fields_hint(users: Sequence[str]) -> str:
    """methods.ddim.base, methods.dpmpp.base -> methods.<method>.base"""
    fields_ = [u.split(" ")[0] for u in users]
    if len(fields_) == 1:
        return fields_[0]
    leaves = list(dict.fromkeys(f.split(".")[-1] for f in fields_))
    head = "methods.<method>." if all(f.startswith("methods.") for f in fields_) else ""
    return head + " / ".join(leaves) if head else " / ".join(fields_)


def _snapshot_root(path: str) -> str:
    # .../models--org--name/snapshots/<commit>/<file...>: the snapshot folder
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        return str(Path(*parts[:i + 2]))
    return str(Path(path).parent)


def check_local(need: LocalNeed) -> Tuple[AssetCheck, List[Problem]]:
    p = Path(need.path)
    users = ", ".join(need.users)
    field_name = need.users[0].split(" ")[0]
    if not p.exists():
        return (AssetCheck("weights", need.path, need.path, "missing", need.path, detail=f"used by {users}"),
                [Problem("weights", f"{field_name}: local path '{need.path}' does not exist.",
                         "Fix the path, or use a Hub id and prefetch it.")])
    if p.is_file():
        return AssetCheck("weights", need.path, need.path, "ok", need.path, p.stat().st_size,
                          detail=f"used by {users}"), []
    missing = [" or ".join(g) for g in need.groups if not any((p / n).is_file() for n in g)]
    size = sum((p / n).stat().st_size for g in need.groups for n in g[:1] if (p / n).is_file())
    if missing:
        return (AssetCheck("weights", need.path, need.path, "missing", need.path, size,
                           detail=f"missing {', '.join(missing[:4])}; used by {users}"),
                [Problem("weights", f"{field_name}: folder '{need.path}' lacks {', '.join(missing[:4])}"
                                    + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else "") + ".",
                         "Point it at a complete diffusers folder (save_pretrained layout) or a Hub id.")])
    return AssetCheck("weights", need.path, need.path, "ok", need.path, size, detail=f"used by {users}"), []
