"""What makes two runs measure the same thing: the protocol they were made with.

:func:`protocol_differences` lists, one sentence each, every protocol setting two results
files disagree on (frame geometry, frame count, seed, prompt set or its file, classes,
videos per prompt, NFE set, the real-video reference a metric such as FVD was computed
against). ``results.schema.comparable`` adds them
to its reasons, so ``results.compare``, ``bench.paired``, ``bench.regression`` and the
leaderboard refuse the same pairs with the same words.

The ``classnames`` prompt set is made by code from the class names, so its digest is an
output of the pipeline, not an input: a changed caption there is a change the regression
check must see clip by clip (the clips record their prompts), not a reason to refuse.
Prompt sets read from a file (``official``, ``file:...``, VBench's) are inputs: another
file is another protocol.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from metrics import plugin as metric_plugin

from results.model import Results

# (config key, what the sentence calls it); each compared as the resolved config has it
PROTOCOL_KEYS = (("height", "frame height"), ("width", "frame width"), ("num_frames", "frame count"),
                 ("seed", "noise seed (protocol.seed)"), ("classes", "class list (protocol.classes)"),
                 ("num_classes", "number of classes (protocol.num_classes)"),
                 ("videos_per_prompt", "videos per prompt"),
                 ("videos_per_prompt_by_dimension", "VBench video pool per dimension (protocol.videos_per_prompt_by_dimension)"),
                 ("prompt_set", "prompt set"),
                 ("name", "protocol name"), ("version", "protocol version"))
GENERATED_PROMPT_SETS = ("classnames",)   # captions made by code: compared per clip, not by digest


def _protocol(res: Results) -> Dict[str, Any]:
    return dict((res.provenance.config or {}).get("protocol") or {})


def _reference(res: Results, family: str) -> Optional[Dict[str, Any]]:
    """The prepared reference statistics a metric family's protocol entry records, if any."""
    ref = (res.provenance.protocols.get(family) or {}).get("reference")
    return dict(ref) if isinstance(ref, Mapping) and ref.get("prepared") else None


def describe_reference(ref: Mapping[str, Any]) -> str:
    listing = str(ref.get("listing_sha256") or "?")[:12]
    return f"{ref.get('source', '?')} (listing {listing}..., {ref.get('n_clips', '?')} clips)"


def _reference_differences(ra: Results, rb: Results) -> List[str]:
    out: List[str] = []
    for family in sorted(set(ra.provenance.protocols) & set(rb.provenance.protocols)):
        a, b = _reference(ra, family), _reference(rb, family)
        if a is None or b is None:
            continue
        same = (a.get("cache_key") == b.get("cache_key") if a.get("cache_key") and b.get("cache_key")
                else (a.get("listing_sha256"), a.get("sampling")) == (b.get("listing_sha256"), b.get("sampling")))
        if not same:
            name = metric_plugin(family).display_name
            out.append(f"{name} reference statistics differ: {describe_reference(a)} vs {describe_reference(b)} "
                       f"({name} against other real clips is another number; use the same reference file in "
                       f"metrics.{family}.options)")
    return out


def setting_differences(pa: Mapping[str, Any], pb: Mapping[str, Any]) -> List[str]:
    """One sentence per protocol setting two resolved ``protocol`` configs disagree on (a
    run's config can be checked against a baseline's before anything is made)."""
    out: List[str] = []
    for key, what in PROTOCOL_KEYS:
        if pa.get(key) != pb.get(key):
            out.append(f"{what} differs: protocol.{key}={pa.get(key)!r} vs {pb.get(key)!r}")
    na, nb = sorted(pa.get("nfe") or []), sorted(pb.get("nfe") or [])
    if na != nb:
        out.append(f"NFE sets differ: protocol.nfe={na} vs {nb}")
    return out


def protocol_differences(ra: Results, rb: Results) -> List[str]:
    """One sentence per protocol setting on which ``ra`` and ``rb`` differ (empty: same protocol)."""
    pa, pb = _protocol(ra), _protocol(rb)
    out: List[str] = setting_differences(pa, pb) if pa and pb else []
    sa, sb = ra.provenance.prompt_set, rb.provenance.prompt_set
    if (sa.get("name") == sb.get("name") and sa.get("name") not in GENERATED_PROMPT_SETS
            and sa.get("sha256") and sb.get("sha256") and sa["sha256"] != sb["sha256"]):
        out.append(f"prompt set {sa.get('name')!r} was read from different files "
                   f"(sha256 {sa['sha256'][:12]}... vs {sb['sha256'][:12]}...)")
    elif sa.get("name") != sb.get("name") and (not pa or pa.get("prompt_set") == pb.get("prompt_set")):
        out.append(f"prompt sets differ: {sa.get('name')!r} vs {sb.get('name')!r}")
    return out + _reference_differences(ra, rb)
