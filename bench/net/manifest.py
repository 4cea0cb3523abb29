"""The prefetch manifest: every asset an experiment needs, where it lives relative to its
cache root (so the caches may move), its size and sha256; and its offline check."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import metrics as metric_registry
from common.errors import InputError
from common.files import sha256_file, write_atomic
from models.weights import hub_cache_dir

MANIFEST_FORMAT = "lcmbench-prefetch-manifest-1"
# the harness's own cache roots -> the environment variable that moves each (the metrics
# declare theirs: Metric.cache_roots)
_ROOT_ENV: Dict[str, Optional[str]] = {"hf_hub": None, "lcmbench": "LCMBENCH_CACHE"}


def metric_cache_roots() -> Dict[str, Tuple[str, Optional[str]]]:
    """Every registered metric's cache roots: name -> (path here, environment variable)."""
    out: Dict[str, Tuple[str, Optional[str]]] = {}
    for plugin in metric_registry.plugins():
        for name, root in plugin.cache_roots().items():
            out.setdefault(name, root)
    return out


def root_names() -> List[str]:
    """The names a manifest's cache roots may have (for --root NAME=PATH)."""
    return list(_ROOT_ENV) + [n for n in metric_cache_roots() if n not in _ROOT_ENV]


def manifest_roots(cfg: Any = None) -> Dict[str, str]:
    roots = {"hf_hub": hub_cache_dir()}
    roots.update({name: path for name, (path, _) in metric_cache_roots().items()})
    if cfg is not None:
        roots["lcmbench"] = os.path.expanduser(str(cfg.cache_dir))
    elif os.environ.get("LCMBENCH_CACHE"):
        roots["lcmbench"] = os.path.expanduser(os.environ["LCMBENCH_CACHE"])
    return roots


def _root_of(path: str, roots: Dict[str, str]) -> Tuple[str, str]:
    """(root name, path relative to it) or ("abs", absolute path)."""
    path = os.path.abspath(path)
    for name, root in sorted(roots.items(), key=lambda kv: -len(kv[1])):
        root = os.path.abspath(root)
        if path == root or path.startswith(root + os.sep):
            return name, os.path.relpath(path, root)
    return "abs", path


def file_entry(name: str, path: str, roots: Dict[str, str], kind: str = "file",
               url: Optional[str] = None, pinned: bool = False) -> Dict[str, Any]:
    root, rel = _root_of(path, roots)
    entry = {"kind": kind, "name": name, "root": root, "path": rel, "size": os.path.getsize(path),
             "sha256": sha256_file(path), "pinned": pinned}
    if url:
        entry["url"] = url
    return entry


def write_manifest(path: str | os.PathLike, experiment: str, roots: Dict[str, str], assets: List[Dict[str, Any]],
                   manual: List[str], missing: Optional[List[Dict[str, str]]] = None,
                   manual_checks: Optional[Dict[str, str]] = None) -> Path:
    """``missing``: what the experiment needs but the prefetch could not fetch; a
    manifest with any is never verified as complete. ``manual_checks``: for a manual
    step, the path that exists once it is done (verify checks it; a step without one
    cannot be checked, so it never verifies)."""
    checks = {step: dict(zip(("root", "path"), _root_of(target, roots)))
              for step, target in (manual_checks or {}).items() if step in manual}
    data = {"format": MANIFEST_FORMAT, "experiment": experiment,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "roots": roots, "assets": assets, "manual": manual,
            "manual_checks": checks, "missing": list(missing or [])}
    return write_atomic(path, json.dumps(data, indent=2))


def _resolve_root(name: str, recorded: Dict[str, str], overrides: Dict[str, str]) -> Optional[str]:
    """Where a cache root is on this machine: --root, then the environment, then the
    path recorded on the prefetch machine."""
    if name in overrides:
        return os.path.expanduser(overrides[name])
    if name == "hf_hub" and any(os.environ.get(k) for k in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME")):
        return hub_cache_dir()
    env = _ROOT_ENV[name] if name in _ROOT_ENV else metric_cache_roots().get(name, (None, None))[1]
    if env and os.environ.get(env):
        return os.path.expanduser(os.environ[env])
    return recorded.get(name)


def read_manifest(path: str | os.PathLike) -> Dict[str, Any]:
    path = Path(os.path.expanduser(str(path)))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read manifest {path} ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{path} is not a {MANIFEST_FORMAT} file")
    return data


def verify_manifest(path: str | os.PathLike, full_hash: bool = True,
                    roots: Optional[Dict[str, str]] = None) -> List[Tuple[str, str]]:
    """Check every asset of a manifest on this machine (no network). Returns one
    (what is wrong, what to do) pair per problem; empty when everything is in place."""
    try:
        data = read_manifest(path)
    except ValueError as err:
        return [(f"{err}.", "Pass the manifest that `python -m bench.prefetch` wrote on the prefetch machine.")]
    overrides = dict(roots or {})
    problems: List[Tuple[str, str]] = []
    if not data.get("assets") and not data.get("manual_checks"):
        problems.append((f"{path} lists no asset, so verifying it would check nothing.",
                         "Pass the manifest `python -m bench.prefetch experiment=...` wrote for the experiment "
                         "this machine will run (one that needs files lists them)."))
    for step in data.get("manual", []):
        check = data.get("manual_checks", {}).get(step)
        if check is None:
            problems.append((f"manual step not done when the manifest was written, and it names nothing to check: "
                             f"{step}", "Do it on the prefetch machine and run `python -m bench.prefetch` again "
                                        "there, so the manifest records the file; then copy caches and manifest."))
            continue
        root = "" if check["root"] == "abs" else _resolve_root(check["root"], data.get("roots", {}), overrides)
        target = check["path"] if check["root"] == "abs" else os.path.join(root or "", check["path"])
        if root is None or not os.path.exists(target):
            problems.append((f"manual step not done: {target} does not exist ({step})",
                             "Do the step on this machine (or copy its result there), then verify again."))
    for m in data.get("missing", []):
        problems.append((f"{m['name']} was not fetched on the prefetch machine ({m['error']}).",
                         "Run `python -m bench.prefetch` again there, with network, until it reports no error; "
                         "then copy the caches and the new manifest."))
    for a in data.get("assets", []):
        root_name = a.get("root", "")
        root = "" if root_name == "abs" else _resolve_root(root_name, data.get("roots", {}), overrides)
        if root is None:
            problems.append((f"{a.get('name')}: unknown cache root '{root_name}'.", f"Pass --root {root_name}=PATH."))
            continue
        file = a["path"] if root_name == "abs" else os.path.join(root, a["path"])
        copy = (f"Copy it from the prefetch machine (cache root '{root_name}'"
                + (f", here {root}" if root else "") + f"; another location: --root {root_name}=PATH).")
        if a.get("kind") == "hub-ref":
            try:
                commit = Path(file).read_text().strip()
            except OSError:
                problems.append((f"{a['name']}: {file} is missing, so loading '{a['repo']}' by revision "
                                 f"'{a['revision']}' offline fails.",
                                 f"Copy the whole {Path(a['path']).parts[0]} folder of the Hub cache."))
                continue
            if commit != a["commit"]:
                problems.append((f"{a['name']}: {file} points at {commit}, the manifest at {a['commit']}.",
                                 "Copy the Hub cache folder again."))
            continue
        if not os.path.isfile(file):
            problems.append((f"{a['name']}: {file} is missing.", copy))
            continue
        size = os.path.getsize(file)
        if size != a["size"]:
            problems.append((f"{a['name']}: {file} has {size} bytes, the manifest says {a['size']}.", copy))
            continue
        if full_hash and sha256_file(file) != a["sha256"]:
            problems.append((f"{a['name']}: {file} does not have sha256 {a['sha256']} (damaged).", copy))
    return problems
