"""Metrics. The registry maps a metric name to its plug-in class (:class:`metrics.plugin.Metric`),
which declares everything the harness asks of it; a metric's heavy module is imported
only when the metric is built.

Built-in metrics are listed in :data:`BUILTIN`. Any installed distribution can add
metrics through the ``lcmbench.metrics`` entry-point group (``name = "module:Class"``);
their config files are found through the class's ``config_dir`` (see docs/architecture.md).

Every row of a results file names a row metric: a plug-in's :meth:`~metrics.plugin.Metric.row_metrics`
(``fvd``, ``clipsim``, ``vbench_total`` ...). :func:`facts` returns the class that carries
that row's facts (display name, direction, decimals, tolerance).
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
from typing import Any, Dict, List, Type

from common.errors import InputError, LcmbenchError
from common.names import did_you_mean
from metrics.plugin import Metric

ENTRY_POINT_GROUP = "lcmbench.metrics"

# name -> plug-in class, as "module:attribute"; the order is the tables' column order
BUILTIN: Dict[str, str] = {
    "fvd": "metrics.fvd_plugin:FVD",
    "kvd": "metrics.kvd_plugin:KVD",
    "fvd_inf": "metrics.fvd_inf_plugin:FVDInf",
    "clipsim": "metrics.clipsim_plugin:CLIPSim",
    "vbench": "metrics.vbench_plugin:VBench",
    "cd_fvd": "metrics.cd_fvd_plugin:CDFVD",
    "jedi": "metrics.jedi_plugin:JEDi",
}


class PluginError(LcmbenchError, ValueError):
    """A metric plug-in that cannot be loaded or breaks the contract."""


def _load(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


@functools.lru_cache(maxsize=1)
def _targets() -> Dict[str, str]:
    """Every metric's "module:Class": the built-ins, then entry points (a name clash is an error)."""
    targets = dict(BUILTIN)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in targets and targets[ep.name] != ep.value:
            raise PluginError(f"metric plug-in {ep.value!r} (entry point of {ep.dist.name if ep.dist else '?'}) "
                              f"takes the name {ep.name!r}, already used by {targets[ep.name]!r}; rename it.")
        targets[ep.name] = ep.value
    return targets


def refresh() -> None:
    """Look for entry points again (after installing a plug-in in a running process)."""
    for cached in (_targets, plugin, _row_owner):
        cached.cache_clear()


@functools.lru_cache(maxsize=None)
def plugin(name: str) -> Type[Metric]:
    """The plug-in class of metric ``name``."""
    targets = _targets()
    if name not in targets:
        raise InputError(f"Unknown metric '{name}'.{did_you_mean(name, targets)} Available: {', '.join(available())}.")
    try:
        cls = _load(targets[name])
    except (ImportError, AttributeError) as err:
        raise PluginError(f"metric plug-in {name!r} ({targets[name]}) cannot be imported: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Metric)) or cls.name != name:
        raise PluginError(f"{targets[name]} is registered as metric {name!r} but is not a metrics.plugin.Metric "
                          f"subclass with name = {name!r}.")
    return cls


def available() -> List[str]:
    """Every registered metric's name, built-ins first."""
    return list(_targets())


def plugins() -> List[Type[Metric]]:
    return [plugin(n) for n in available()]


def config_dirs() -> List[str]:
    """The config folders metric plug-ins declare (``config_dir``: a folder holding
    ``metric/<name>.yaml``), for Hydra's search path. A plug-in that cannot be imported is
    left out here; using it reports why."""
    out = []
    for name in available():
        try:
            folder = plugin(name).config_dir
        except PluginError:
            continue
        if folder and folder not in out:
            out.append(str(folder))
    return out


def build(name: str, **kwargs: Any):
    """Build a metric by registry name; keyword arguments go to its builder."""
    return _load(plugin(name).builder)(**kwargs)


@functools.lru_cache(maxsize=None)
def _row_owner() -> Dict[str, str]:
    return {row: p.name for p in plugins() for row in p.row_metrics()}


def family(metric: str) -> str:
    """The plug-in a row metric belongs to (``vbench_total`` -> ``vbench``)."""
    owner = _row_owner().get(metric)
    if owner is None:
        rows = row_metrics()
        raise InputError(f"unknown metric {metric!r}.{did_you_mean(metric, rows)} Row metrics: "
                         f"{', '.join(rows[:6])} ...")
    return owner


def facts(metric: str) -> Type[Metric]:
    """The class carrying a row metric's facts (``facts("fvd").higher_is_better`` is False)."""
    return plugin(family(metric))


def is_known(metric: str) -> bool:
    return metric in _row_owner()


def row_metrics() -> List[str]:
    """Every metric name a results row may carry, in the registry's order."""
    return list(_row_owner())


def display(metric: str) -> str:
    """The display name of a row metric, e.g. ``VBench Temporal Flickering``."""
    return facts(metric).display_for(metric)
