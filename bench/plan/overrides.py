"""The command line's overrides, checked before Hydra starts: misspelt config group
options (experiment=tabel1), misspelt keys (runner.batchsize=2), registry names and
list-typed settings given a bare value, each with the closest valid name. The arguments
are read by Hydra's own override parser."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from omegaconf import BooleanNode, FloatNode, IntegerNode, OmegaConf
from omegaconf.errors import ValidationError

from common.names import did_you_mean
from metrics import available as available_metrics
from metrics import config_dirs as metric_config_dirs
from models.registry import MODELS
from models.schedulers import SAMPLER_DEFAULTS

from bench.plan.config import BenchConfig, moved_sections, moved_setting

_PARSER = OverridesParser.create()


GROUPS = ("experiment", "model", "sampler", "metric", "fast")


def _check_key(path: str) -> Optional[str]:
    """A dotted key against the config schema (bench/plan/config.py); None when it exists
    or the schema leaves that level free (dicts of Any)."""
    node, done = BenchConfig, []
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not dataclasses.is_dataclass(node):
            return None
        hints = typing.get_type_hints(node)
        name = parts[i]
        if name not in hints:
            where = ".".join(done) or "the top level"
            return (f"unknown setting '{path}': '{name}' is not a key of {where}.{did_you_mean(name, hints)} "
                    f"The settings are in bench/plan/config.py; `python run_bench.py --cfg job` prints them all.")
        done.append(name)
        kind = hints[name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Union and len(args) == 1:
            kind = args[0]
        if typing.get_origin(kind) is dict:
            value_type = typing.get_args(kind)[1]
            if i + 1 < len(parts):
                done.append(parts[i + 1])   # a free name, e.g. the method in methods.<name>.lora_scale
            node, i = value_type, i + 2
            continue
        node, i = kind, i + 1
    return None


def _schema_type(path: str):
    """The annotated type of a dotted key of the schema, or None where it is free-form."""
    node: typing.Any = BenchConfig
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not dataclasses.is_dataclass(node):
            return None
        kind = typing.get_type_hints(node).get(parts[i])
        if kind is None:
            return None
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Union and len(args) == 1:
            kind = args[0]
        if typing.get_origin(kind) is dict:
            node, i = typing.get_args(kind)[1], i + 2
            if i > len(parts):
                return None
            continue
        node, i = kind, i + 1
    return node


def _search_path(overrides: Sequence[Override]) -> List[Path]:
    """Config folders added with hydra.searchpath=[file:///path,...] (your own model,
    metric or experiment files beside bench/configs)."""
    out = []
    for o in overrides:
        if o.key_or_group == "hydra.searchpath" and isinstance(o.value(), list):
            out += [Path(item[len("file://"):]) for item in o.value()
                    if isinstance(item, str) and item.startswith("file://")]
    return out


def _names(value: Any) -> List[str]:
    """The option names an override's value selects (none for interpolations and
    structured values, which are left to Hydra)."""
    if isinstance(value, str) and "${" not in value:
        return [value]
    return []


def _check_group(o: Override, roots: Sequence[Path]) -> Optional[str]:
    group = o.key_or_group
    options = sorted({p.stem for root in roots for p in (root / group).glob("*.yaml")})
    for name in _names(o.value()):
        if name not in options and name != f"{group}_schema":
            return (f"unknown {group} '{name}' in '{o.input_line}'.{did_you_mean(name, options)} "
                    f"Available: {', '.join(options)} (bench/configs/{group}/).")
    # the package names the metric: +metric@metrics.fvd=fvd_random
    if group == "metric" and o.package and o.package.startswith("metrics.") and not o.is_delete():
        return _check_name("metric", o.package.split(".", 1)[1], o.input_line)
    return None


# the schema's scalar types, checked with OmegaConf's own nodes (what Hydra applies later)
_SCALARS = {int: (IntegerNode, "an integer (a whole number)", "2"), float: (FloatNode, "a number", "0.5"),
            bool: (BooleanNode, "true or false", "true")}


def _scalar_type(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Union and len(args) == 1:
        return args[0]
    return kind


def _type_problem(key: str, o: Override) -> Optional[str]:
    """A value of the wrong type for the schema (runner.batch_size=abc, protocol.nfe=[1,abc]):
    Hydra's own message is several lines about type conversion."""
    kind, value = _scalar_type(_schema_type(key)), o.value()
    if value is None or "${" in str(value):
        return None
    if typing.get_origin(kind) is list and isinstance(value, list):
        item = _scalar_type(typing.get_args(kind)[0]) if typing.get_args(kind) else None
        if item not in _SCALARS:
            return None
        node, what, _ = _SCALARS[item]
        for element in value:
            try:
                node(element)
            except ValidationError:
                return (f"{key}={o.get_value_element_as_str()}: {element!r} is not {what}; {key} takes a "
                        f"list of them, e.g. {key}=[1,2,4,8].")
        return None
    if kind not in _SCALARS:
        return None
    node, what, example = _SCALARS[kind]
    try:
        node(value)
    except ValidationError:
        return f"{key}={o.get_value_element_as_str()}: {key} takes {what}, e.g. {key}={example}."
    return None


def _check_setting(o: Override) -> Optional[str]:
    key, value = o.key_or_group, o.value()
    if key == "methods" and value == {} and not o.is_delete():
        # Hydra merges a dict into the experiment's methods: {} would silently keep them all
        return ("methods={} does not empty the method set (Hydra merges it into the experiment's methods) and a run "
                "needs at least one method: remove the ones you do not want with ~methods.NAME, e.g. "
                "'~methods.ddim', or pick an experiment with the methods you want.")
    if o.is_delete() or key.startswith("hydra"):
        return None
    # '+key=value' adds a key: it must still be one the schema has (or a free-form level)
    problem = moved_setting(key, o.get_value_element_as_str()) or _check_key(key)
    if problem:
        return problem
    if typing.get_origin(_schema_type(key)) is list and not isinstance(value, list) and value is not None \
            and "${" not in str(value):
        # Hydra's own message is several lines about type conversion; say what to write instead
        text = o.get_value_element_as_str()
        return f"{key} is a list: write {key}=[{text}] (brackets, comma-separated, e.g. {key}=[1,2,4,8])."
    problem = _type_problem(key, o)
    if problem:
        return problem
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "methods" and parts[2] == "name" and isinstance(value, str):
        return _check_name("model", value, o.input_line)
    if len(parts) == 4 and parts[0] == "methods" and parts[2:] == ["sampler", "kind"] and isinstance(value, str):
        return _check_name("sampler kind", value, o.input_line)
    return None


def check_overrides(argv, config_dir: str) -> Optional[str]:
    """Catch misspelt config group options (experiment=tabel1, model@methods.x=animatelcn)
    and misspelt keys before Hydra starts, with the closest valid name. The arguments are
    read by Hydra's own override parser; sweeps, interpolations and anything it cannot
    parse are left to Hydra. Returns the error message, or None."""
    overrides = []
    for arg in argv:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            continue   # options such as --cfg job
        try:
            overrides += _PARSER.parse_overrides([arg])
        except OverrideParseException as err:
            return _grammar_problem(arg, err)
    # metric plug-ins add their own config folders (as hydra_plugins/lcmbench_metrics does for Hydra)
    roots = [Path(config_dir)] + _search_path(overrides) + [Path(d) for d in metric_config_dirs()]
    problem = _moved_in_experiment(overrides, roots)
    if problem:
        return problem
    for o in overrides:
        if o.is_sweep_override():
            continue
        group = o.key_or_group
        if group in GROUPS and (group == "experiment" or o.package or o.is_add() or o.is_delete()):
            problem = _check_group(o, roots)
        else:
            problem = _check_setting(o)
        if problem:
            return problem
    return None


def _moved_in_experiment(overrides: Sequence[Override], roots: Sequence[Path]) -> Optional[str]:
    """An experiment file that still has a metric's former top-level section (``vbench:``):
    Hydra would refuse the key with a traceback, naming neither the file nor the new key."""
    chosen = [o.value() for o in overrides if o.key_or_group == "experiment" and not o.is_delete()]
    if not chosen:   # the default experiment of config.yaml
        defaults = OmegaConf.load(Path(roots[0]) / "config.yaml").get("defaults", [])
        chosen = [d["experiment"] for d in defaults if isinstance(d, dict) and "experiment" in d]
    for name in chosen:
        if not isinstance(name, str) or "${" in name:
            continue
        for root in roots:
            path = Path(root) / "experiment" / f"{name}.yaml"
            if path.is_file():
                problem = moved_sections(OmegaConf.to_container(OmegaConf.load(path)), str(path))
                if problem:
                    return problem
                break
    return None


def _check_name(kind: str, name: str, arg: str) -> Optional[str]:
    """A model, sampler or metric name against its registry (pure Python, no torch)."""
    if not name or "${" in name:
        return None
    known = {"model": MODELS, "sampler kind": SAMPLER_DEFAULTS}.get(kind, available_metrics())
    if name in known:
        return None
    return (f"unknown {kind} '{name}' in '{arg}'.{did_you_mean(name, known)} "
            f"Available: {', '.join(sorted(known))}.")


def _grammar_problem(arg: str, err: OverrideParseException) -> str:
    """An argument Hydra's override grammar cannot read, as one line (Hydra prints the
    argument with a caret below it and a link)."""
    if any(ord(ch) > 127 for ch in arg) and "=" in arg:
        key, value = arg.split("=", 1)
        if not value.startswith(("'", '"')):
            return (f"the value of '{arg}' has characters outside ASCII, which Hydra reads only in quotes: write "
                    f"{key}='\"{value}\"' (double quotes inside single quotes for the shell).")
    detail = str(err).splitlines()[0].strip() if str(err).strip() else type(err).__name__
    return (f"Hydra cannot read the argument '{arg}' ({detail}). Quote values with spaces or special characters, "
            f"e.g. key='\"value\"'; the grammar: https://hydra.cc/docs/advanced/override_grammar/basic/.")
