"""Prefetch: download everything an experiment needs, verified, and write a manifest
that an offline machine can check.

    python -m bench.prefetch experiment=table1 [key=value ...] [--manifest PATH] [--dry-run]
    python -m bench.prefetch --verify MANIFEST [--quick] [--root hf_hub=PATH]

- Hub weights go into the standard Hugging Face cache through
  ``huggingface_hub.snapshot_download``, limited to the files diffusers reads (the
  preferred weight file of each component plus small config/tokenizer files; never the
  multi-GB .ckpt files the same repos hold). Each downloaded blob is checked against its
  Hub checksum (sha256 for LFS files, git sha1 otherwise).
- Plain URLs (the official caption file, the files metrics declare with a URL) are fetched
  by :func:`download_url`: into ``<target>.part``, resumed with an HTTP Range request
  after an interruption, checked against the expected sha256 when one is known, then
  renamed into place. A corrupted download is deleted; a 404 is one clear error.
- The manifest (JSON) lists every asset: where it lives (relative to its cache root,
  so the caches may move), size and sha256. ``--verify`` rechecks all of it with no
  network; things that cannot be downloaded (UCF-101, a file with no known URL) are
  listed as manual steps.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from huggingface_hub import HfApi, snapshot_download

import metrics as metric_registry
from bench.net.download import ChecksumMismatch, DownloadError, download_url
from bench.plan import checkpoints
from bench.plan.config import compose, get
from bench.preflight.assets import check_hub_blob, metric_hub_needs, weight_needs
from common.errors import fail
from bench.net.manifest import manifest_roots, file_entry, read_manifest, root_names, verify_manifest, write_manifest
from bench.net.offline import requested
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.plan.prompts import OFFICIAL_CAPTIONS_SHA256, OFFICIAL_CAPTIONS_URL
from common.files import sha256_file
from metrics.plugin import FileNeed


@dataclass
class UrlItem:
    name: str
    url: Optional[str]
    target: str
    sha256: Optional[str]
    root: str                  # lcmbench | vbench | torch_hub | abs
    users: List[str]


@dataclass
class FetchPlan:
    hub: List[Any] = field(default_factory=list)           # preflight.HubNeed
    urls: List[UrlItem] = field(default_factory=list)
    files: List[Tuple[str, str, str]] = field(default_factory=list)   # (name, path, root) already local
    manual: List[str] = field(default_factory=list)
    manual_checks: Dict[str, str] = field(default_factory=dict)   # step -> the path that exists once it is done

    def step(self, text: str, done_when: Optional[str] = None) -> None:
        self.manual.append(text)
        if done_when:
            self.manual_checks[text] = done_when


def fetch_plan(cfg: Any) -> FetchPlan:
    """Everything the experiment needs from outside, from the same rules preflight uses."""
    plan = FetchPlan()
    roots = manifest_roots(cfg)
    needs = weight_needs(cfg)
    plan.manual += [p.line() for p in needs.problems]
    for need in needs.local:
        if os.path.exists(need.path):
            if os.path.isfile(need.path):
                plan.files.append((", ".join(need.users), need.path, "abs"))
            else:
                for group in need.groups:
                    paths = [os.path.join(need.path, n) for n in group]
                    hit = next((q for q in paths if os.path.isfile(q)), None)
                    if hit:
                        plan.files.append((", ".join(need.users), hit, "abs"))
        else:
            plan.step(f"{', '.join(need.users)}: local path {need.path} does not exist; copy it there.", need.path)
    run = run_facts(cfg)
    p = cfg.protocol
    if get(p, "prompt_set") == "official":
        given = get(p, "prompt_file")
        if given and os.path.isfile(os.path.expanduser(given)):
            # the user's own copy is recorded, never replaced (preflight checks its sha256)
            plan.files.append(("protocol.prompt_file", os.path.expanduser(given), "abs"))
        else:
            target = given or os.path.join(roots["lcmbench"], "UCF101_prompts.yaml")
            plan.urls.append(UrlItem("official UCF-101 captions", run.urls.get("captions", OFFICIAL_CAPTIONS_URL),
                                     os.path.expanduser(target), OFFICIAL_CAPTIONS_SHA256, "lcmbench",
                                     ["protocol.prompt_set"]))
    unknown: List[Tuple[str, str]] = []
    declared: Dict[str, List[FileNeed]] = {}
    for name, options in enabled_metrics(cfg, unknown).items():
        try:
            declared[name] = metric_registry.plugin(name).files(options, run)
        except ValueError as err:
            plan.manual.append(f"metrics.{name}: {err}")
            continue
        for need in declared[name]:
            if need.hub is None:
                _file_item(need, f"metrics.{name}", plan)
    plan.manual += [f"{what} {fix}" for what, fix in unknown]
    metric_hub_needs(needs, declared)
    plan.hub = list(needs.hub.values())
    return plan


def _file_item(need: FileNeed, user: str, plan: FetchPlan) -> None:
    """One file a metric declares: recorded when it is there (a user's own file is never
    replaced), downloaded when it has a URL, else a manual step that names what makes it."""
    if need.path is None:
        plan.manual.append(f"{need.label}: {need.how}.")
        return
    path = os.path.expanduser(need.path)
    if need.user_file and os.path.isfile(path):
        plan.files.append((need.label, path, "abs"))
    elif need.url:
        plan.urls.append(UrlItem(need.label, need.url, path, need.sha256, need.root, [user]))
    elif os.path.isfile(path):
        plan.files.append((need.label, path, need.root))
    elif not os.path.isdir(path):   # a folder (a dataset) is checked by preflight, not recorded
        plan.step(f"{need.label}: {path} does not exist; {need.how}.", path)


def choose_files(listing: Sequence[str], groups: Sequence[Tuple[str, ...]],
                 small: Sequence[str] = ()) -> Tuple[List[str], List[str]]:
    """(files to fetch, groups the repo cannot satisfy): the first alternative of each
    group that the repo has, plus the small files matching ``small``."""
    have = set(listing)
    chosen, missing = [], []
    for group in groups:
        pick = next((n for n in group if n in have), None)
        if pick is None:
            missing.append(" or ".join(group))
        elif pick not in chosen:
            chosen.append(pick)
    for name in listing:
        if name not in chosen and any(fnmatch.fnmatch(name, pat) for pat in small):
            chosen.append(name)
    return chosen, missing


def hub_entries(repo: str, revision: Optional[str], snapshot: str, files: Sequence[str], cache: str,
                verify: bool = True) -> List[Dict[str, Any]]:
    """Manifest entries for files of a cached snapshot, each checked against its blob's
    Hub checksum; a damaged blob is deleted and raises ChecksumMismatch."""
    commit = os.path.basename(snapshot.rstrip(os.sep))
    entries = []
    for name in files:
        path = os.path.join(snapshot, name)
        if not os.path.isfile(path):
            raise DownloadError(f"{repo}: {name} is missing from the downloaded snapshot {snapshot}. Run prefetch "
                                f"again.")
        blob = os.path.realpath(path)
        if verify:
            bad = check_hub_blob(path)
            if bad:
                os.unlink(blob)
                if os.path.islink(path):
                    os.unlink(path)
                raise ChecksumMismatch(f"{repo}: {bad}; the damaged file was deleted. Run prefetch again.")
        etag = os.path.basename(blob)
        sha = etag if re.fullmatch(r"[0-9a-f]{64}", etag) else sha256_file(blob)
        entries.append({"kind": "hub", "name": f"{repo}/{name}", "repo": repo, "revision": revision or "main",
                        "commit": commit, "file": name, "root": "hf_hub",
                        "path": os.path.relpath(path, cache), "size": os.path.getsize(blob), "sha256": sha})
    repo_dir = Path(snapshot).parent.parent
    rev = revision or "main"
    if not re.fullmatch(r"[0-9a-f]{40}", rev):
        ref = repo_dir / "refs" / rev
        entries.append({"kind": "hub-ref", "name": f"{repo}@{rev}", "repo": repo, "revision": rev, "commit": commit,
                        "root": "hf_hub", "path": os.path.relpath(ref, cache)})
    return entries


def fetch_hub(need: Any, cache: str, say: Callable[[str], None]) -> List[Dict[str, Any]]:
    listing = HfApi().list_repo_files(need.repo, revision=need.revision)
    files, missing = choose_files(listing, need.groups, need.small)
    if missing:
        raise DownloadError(f"{need.repo}: the repo has none of {', '.join(missing)} (needed by "
                            f"{', '.join(need.users)}). Check the repo id / revision.")
    say(f"  hub  {need.repo}: {len(files)} files ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''})")
    snapshot = snapshot_download(need.repo, revision=need.revision, cache_dir=cache, allow_patterns=files)
    return hub_entries(need.repo, need.revision, snapshot, files, cache)


def prefetch(cfg: Any, manifest: Optional[str] = None, dry_run: bool = False, retries: int = 3,
             say: Callable[[str], None] = print) -> Tuple[Optional[Path], List[str], List[str]]:
    """Download and verify everything ``cfg`` needs. Returns (manifest path, errors,
    manual steps)."""
    if requested(cfg) and not dry_run:
        return None, ["prefetch downloads, but offline mode is on (HF_HUB_OFFLINE / preflight.offline). Run it "
                      "without offline mode on a machine with network."], []
    roots = manifest_roots(cfg)
    plan = fetch_plan(cfg)
    say(f"prefetch: experiment={cfg.experiment}: {len(plan.hub)} Hub repos, {len(plan.urls)} URLs, "
        f"{len(plan.files)} local files, {len(plan.manual)} manual steps")
    if dry_run:
        for need in plan.hub:
            say(f"  hub  {need.repo}{'@' + need.revision if need.revision else ''}: "
                f"{' | '.join(g[0] for g in need.groups)} (+ {', '.join(need.small) or 'nothing'})")
        for item in plan.urls:
            say(f"  url  {item.url} -> {item.target}" + (f" (sha256 {item.sha256[:12]}...)" if item.sha256 else ""))
        for name, path, _ in plan.files:
            say(f"  file {name}: {path}")
        for step in plan.manual:
            say(f"  manual: {step}")
        return None, [], plan.manual
    assets: List[Dict[str, Any]] = []
    errors: List[str] = []
    missing: List[Dict[str, str]] = []
    for need in plan.hub:
        try:
            assets += fetch_hub(need, roots["hf_hub"], say)
        except Exception as err:   # every failure is reported; the other assets still download
            errors.append(f"{need.repo}: {type(err).__name__}: {err}")
            missing.append({"name": f"Hub repo {need.repo}", "error": f"{type(err).__name__}: {err}"[:300]})
    for item in plan.urls:
        try:
            result = download_url(item.url, item.target, item.sha256, retries=retries)
            say(f"  url  {item.name}: {result.status}, {result.size} bytes, sha256 {result.sha256[:16]}..."
                + ("" if item.sha256 else " (no published checksum: recorded as fetched)"))
            assets.append(file_entry(item.name, str(result.path), roots, "url", item.url, bool(item.sha256)))
        except DownloadError as err:
            errors.append(str(err))
            missing.append({"name": item.name, "error": str(err)[:300]})
    for name, path, _ in plan.files:
        assets.append(file_entry(name, path, roots))
    target = Path(manifest) if manifest else Path(roots["lcmbench"]) / "manifests" / f"{cfg.experiment}.json"
    written = write_manifest(target, str(cfg.experiment), roots, assets, plan.manual, missing, plan.manual_checks)
    needed = len(plan.hub) + len(plan.urls) + len(plan.files)
    if missing:
        say(f"prefetch: INCOMPLETE, {len(missing)} of {needed} needed assets were not fetched: "
            f"{', '.join(m['name'] for m in missing)}. The manifest {written} records them as missing, so "
            f"--verify fails until a prefetch succeeds.")
    else:
        say(f"prefetch: manifest {written} ({len(assets)} assets). On the offline machine: "
            f"python -m bench.prefetch --verify {written}")
    return written, errors, plan.manual


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prefetch",
                                 description="Download and verify everything an experiment needs, or verify a "
                                             "manifest offline.",
                                 epilog="Other arguments are Hydra overrides, e.g. experiment=table1.")
    ap.add_argument("--verify", metavar="MANIFEST", help="check a manifest here (no network) and exit")
    ap.add_argument("--quick", action="store_true", help="with --verify: sizes only, no sha256")
    ap.add_argument("--root", action="append", default=[], metavar="NAME=PATH",
                    help=f"with --verify: where a cache root is on this machine ({', '.join(root_names())})")
    ap.add_argument("--manifest", default=None, help="where to write the manifest "
                                                     "(default <cache_dir>/manifests/<experiment>.json)")
    ap.add_argument("--dry-run", action="store_true", help="list what would be fetched; download nothing")
    ap.add_argument("--retries", type=int, default=3, help="resumed attempts per URL after a dropped connection")
    args, overrides = ap.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("--")]
    if bad:
        ap.error(f"unknown option(s) {bad}")
    if args.verify:
        roots = {}
        for pair in args.root:
            if "=" not in pair:
                ap.error(f"--root expects NAME=PATH, got '{pair}'")
            k, v = pair.split("=", 1)
            roots[k] = v
        problems = verify_manifest(args.verify, full_hash=not args.quick, roots=roots)
        for what, fix in problems:
            print(f"prefetch verify: {what} Fix: {fix}")
        if problems:
            fail(f"{args.verify} does not verify: {len(problems)} problem(s), each listed above with its fix.")
        data = read_manifest(args.verify)
        print(f"prefetch verify: {args.verify}: OK, {len(data.get('assets', []))} assets checked"
              + (" (sizes only)" if args.quick else " (size and sha256)")
              + (f", {len(data.get('manual', []))} manual steps done" if data.get("manual") else ""))
        return 0
    try:
        cfg = compose(overrides)
    except Exception as err:  # a Hydra composition error is a user error: one line
        print(f"lcmbench prefetch: error: {err}", file=sys.stderr)
        return 2
    checkpoints.expand(cfg)   # the base weights your checkpoints are evaluated on
    _, errors, manual = prefetch(cfg, args.manifest, args.dry_run, args.retries)
    for line in errors:
        print(f"prefetch: error: {line}", file=sys.stderr)
    if not args.dry_run:   # a dry run has listed them already
        for line in manual:
            print(f"prefetch: manual step: {line}", file=sys.stderr)
    if errors:
        return 2
    return 1 if manual and not args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
