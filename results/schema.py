"""Reading, checking and writing results files, and their documentation.

:func:`validate` parses a results dict into the typed :class:`results.model.Results`
and turns every problem into one located line (``rows[3].nfe: expected an integer``);
:func:`load` / :func:`save` read and write ``results.json`` (atomically);
:func:`comparable` says why two results must not be compared; :func:`json_schema` and
:func:`schema_markdown` document the format from the model itself.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

from pydantic import BaseModel, ValidationError

from common.errors import LcmbenchError, MissingInput
from common.files import write_atomic
from metrics import display as metric_display
from metrics import family as metric_family
from results.model import SCHEMA_VERSION, CrossReferenceError, Results, protocol_id
from results.comparability import protocol_differences
from results.registry import is_set_statistic, section_plugins

PathLike = Union[str, "os.PathLike[str]"]
EXAMPLE = Path(__file__).resolve().parent / "data" / "example_results.json"   # a valid file, tested
_QUOTED = re.compile(r"'(.*?)'")   # the values in pydantic's "'a', 'b' or 'c'"
# where a stray key most likely belongs
_EXTRA_HINT = {"Row": "; put additional information under 'extra'", "TimingRow": "; put additional information "
               "under 'extra'", "MethodInfo": "; put additional information under 'extra'"}


class SchemaError(LcmbenchError, ValueError):
    """A results file or dict that does not follow the schema.

    ``problems`` lists every problem found, each prefixed with its location
    (e.g. ``rows[3].nfe``), so one run of the validator reports them all.
    """

    def __init__(self, problems: List[str], source: str = "results"):
        self.problems = list(problems)
        self.source = source
        head = (f"{source} does not follow results schema {SCHEMA_VERSION} ({len(problems)} "
                f"problem{'s' if len(problems) != 1 else ''}):")
        super().__init__("\n".join([head] + [f"  - {p}" for p in problems]))


# ---------------------------------------------------------------- located messages

def _tname(x: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(x), type(x).__name__)


def _path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: Sequence[Any]) -> Optional[Type[BaseModel]]:
    """The model class at ``loc`` inside Results (None where the schema is free-form)."""
    node: Any = Results
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return None
            node = field.annotation
        elif typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]
        else:
            return None
        while typing.get_origin(node) is Union:   # Optional[X]
            node = next(a for a in typing.get_args(node) if a is not type(None))
    while typing.get_origin(node) is Union:
        node = next(a for a in typing.get_args(node) if a is not type(None))
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _message(e: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(location, message) pairs for one pydantic error."""
    kind, loc, got, ctx = e["type"], tuple(e["loc"]), e.get("input"), e.get("ctx") or {}
    here = _path(loc)
    if kind == "missing":
        return [(_path(loc[:-1]) or "top level", f"missing required field '{loc[-1]}'")]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = f" (allowed: {', '.join(sorted(model.model_fields))})" if model else ""
        hint = _EXTRA_HINT.get(model.__name__, "") if model else ""
        return [(_path(loc[:-1]) or "top level", f"unknown field '{loc[-1]}'{allowed}{hint}")]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        what = "a JSON object" if not loc else "an object"
        return [(here or "top level", f"expected {what}, got {_tname(got)}")]
    if kind == "value_error" and isinstance(ctx.get("error"), CrossReferenceError):
        return [(".".join(p for p in (here, rel) if p) or "top level", what) for rel, what in ctx["error"].problems]
    text = {
        "int_type": f"expected an integer, got {_tname(got)} {got!r}",
        "float_type": f"expected a number, got {_tname(got)} {got!r}",
        "finite_number": f"must be a finite number, got {got!r}",
        "string_type": f"expected a string, got {_tname(got)} {got!r}",
        "bool_type": f"expected true or false, got {_tname(got)} {got!r}",
        "list_type": f"expected an array, got {_tname(got)}",
        "string_too_short": "must not be empty",
        "greater_than_equal": f"must be >= {ctx.get('ge')}, got {got}",
        "greater_than": f"must be > {ctx.get('gt')}, got {got}",
        "less_than_equal": f"must be <= {ctx.get('le')}, got {got}",
        "literal_error": f"must be one of {', '.join(_QUOTED.findall(str(ctx.get('expected'))))}; got {got!r}",
        "value_error": str(ctx.get("error", e["msg"])),
    }.get(kind, e["msg"])
    return [(here or "top level", text)]


def validate(d: Any, source: str = "results") -> Results:
    """``d`` as a typed :class:`Results`; :class:`SchemaError` listing every problem,
    each with its location, when it does not follow the schema."""
    try:
        return Results.model_validate(d)
    except ValidationError as err:
        problems = [f"{where}: {what}" for e in err.errors(include_url=False) for where, what in _message(e)]
        raise SchemaError(list(dict.fromkeys(problems)), source) from None


def as_results(results: Union[Results, Mapping[str, Any]]) -> Results:
    """Accept a :class:`Results` or a plain dict (validated on the way in)."""
    if isinstance(results, Results):
        return results
    if isinstance(results, Mapping):
        return validate(results)
    raise TypeError(f"expected a Results object or a results dict, got {type(results).__name__}")


# ---------------------------------------------------------------- I/O

def load(path: PathLike) -> Results:
    """Read and validate a results.json. Errors name the file and every problem."""
    p = Path(path)
    if not p.is_file():
        raise MissingInput(f"results file not found: {p}")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SchemaError([f"not valid JSON: {e}"], str(p)) from None
    return validate(d, source=str(p))


def save(path: PathLike, results: Union[Results, Mapping[str, Any]]) -> Path:
    """Validate and write ``results`` as JSON, atomically (readers never see half a file)."""
    d = as_results(results).to_dict()
    validate(d)  # round-trip check: what we write must read back
    return write_atomic(path, json.dumps(d, indent=2, allow_nan=False, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- documentation

def json_schema() -> Dict[str, Any]:
    """The JSON Schema of results.json, from the typed model."""
    return Results.model_json_schema()


def _type_text(annotation: Any) -> str:
    text = repr(annotation).replace("typing.", "")
    text = re.sub(r"<class '(?:[\w.]*\.)?(\w+)'>", r"\1", text).replace("results.model.", "")
    return text.replace("NoneType", "null")


def schema_markdown() -> str:
    """results/SCHEMA.md: every section of the model, its fields, types and descriptions."""
    lines = [f"# results.json, schema {SCHEMA_VERSION}", "",
             "Generated from `results/model.py` by `python -m results schema --markdown`; do not edit by hand. "
             "`python -m results schema` prints the JSON Schema.", ""]
    seen: List[type] = []

    def visit(model: Type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for field in model.model_fields.values():
            for arg in _leaves(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    visit(arg)

    visit(Results)
    for model in seen:
        lines += [f"## {model.__name__}", "", inspect.cleandoc(model.__doc__ or "").replace("``", "`"), "",
                  "| field | type | required | description |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | `{_type_text(field.annotation)}` | {'yes' if field.is_required() else 'no'} "
                         f"| {field.description or ''} |")
        if model.model_config.get("extra") == "allow":
            lines.append("| further keys | any | no | allowed |")
        lines.append("")
    lines += ["## Versions", "",
              "Adding an optional field is a minor change (1.x); renaming, removing or re-meaning a field, or "
              "changing units, is a major change (2.0). Either way `SCHEMA_VERSION` changes, files of other "
              "versions are refused by `load` with what to do, and regression baselines are regenerated "
              "(`results/baselines/README.md`).", "",
              "## Example (abridged)", "", "```json", EXAMPLE.read_text().rstrip(), "```"]
    return "\n".join(lines)


def _leaves(annotation: Any) -> List[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [leaf for a in args for leaf in _leaves(a)]


# ---------------------------------------------------------------- comparability

def parity_version(res: Results) -> str:
    """The parity version of the pipeline that made ``res`` ("1" for files without one)."""
    return str((res.provenance.parity or {}).get("version", 1))


def comparable(a: Union[Results, Mapping[str, Any]], b: Union[Results, Mapping[str, Any]]) -> List[str]:
    """Reasons why two results must not be compared; an empty list means they may be.

    Different schema versions, weights modes, metric protocols (name or
    version, for every metric family both files use), run protocols (frame
    geometry and count, seed, prompt set or its file, classes, videos per
    prompt, NFE set, a metric's real-video reference: ``results.comparability``),
    sample sizes of set statistics such as FVD (biased by N) or sets of scored
    VBench dimensions all make numbers incomparable.
    """
    ra, rb = as_results(a), as_results(b)
    reasons: List[str] = []
    va, vb = parity_version(ra), parity_version(rb)
    if va != vb:
        reasons.append(f"made by pipelines of different parity versions ({va} vs {vb}): version 2 matches the "
                       f"authors' code stage by stage (per-frame motion norm, their LoRA fusion, the personalized "
                       f"VAE, truncated frames, DPM++ ending at sigma_min, I3D BatchNorm eps 1e-5), so clips and "
                       f"numbers from version 1 measure another pipeline: regenerate the older run (or baseline) "
                       f"with this version")
    if ra.schema_version != rb.schema_version:
        reasons.append(f"schema versions differ: {ra.schema_version} vs {rb.schema_version}")
    if ra.weights_mode != rb.weights_mode:
        reasons.append(f"weights modes differ: {ra.weights_mode!r} vs {rb.weights_mode!r} "
                       f"(numbers from different weights measure different models)")
    fams_a, fams_b = _families(ra), _families(rb)
    for fam in sorted(fams_a & fams_b):
        pa, pb = ra.provenance.protocols.get(fam), rb.provenance.protocols.get(fam)
        if pa is None or pb is None:
            continue
        if (pa["name"], str(pa["version"]), protocol_id(pa)) != (pb["name"], str(pb["version"]), protocol_id(pb)):
            reasons.append(f"{fam} protocols differ: {pa['name']} v{pa['version']} ({protocol_id(pa)}) vs "
                           f"{pb['name']} v{pb['version']} ({protocol_id(pb)})")
    reasons += protocol_differences(ra, rb)   # geometry, frames, seed, prompts, classes, NFE, references
    for mid in sorted(set(ra.vbench) & set(rb.vbench)):
        da, db = set(ra.vbench[mid].scores), set(rb.vbench[mid].scores)
        if da != db:
            reasons.append(f"VBench for {mid} scored different dimensions ({len(da)} vs {len(db)}; "
                           f"only in one: {', '.join(sorted(da ^ db))}), so its totals differ in meaning")
    for r in ra.rows:
        o = rb.row(r.method, r.nfe, r.metric)
        if o is not None and o.n != r.n and (is_set_statistic(r) or is_set_statistic(o)):
            name = metric_display(r.metric)
            reasons.append(f"{name} of {r.method} at {r.nfe} steps uses {r.n} clips vs {o.n} "
                           f"({name} is a statistic of the whole set, biased by sample size; compare only at "
                           f"equal N)")
    return reasons


def _families(res: Results) -> set:
    """The metric families a file has numbers of: its rows' and its filled results sections'."""
    sections = {p.name for section, p in section_plugins().items() if getattr(res, section, None)}
    return {metric_family(r.metric) for r in res.rows} | sections

