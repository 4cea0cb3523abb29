"""Hydra finds this search-path plug-in by itself (the ``hydra_plugins`` namespace): it adds
the config folder of every metric plug-in that declares one, so an installed metric's
``metric/<name>.yaml`` composes like a built-in one (``+metric@metrics.<name>=<name>``)."""
from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

import metrics


class MetricConfigSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for folder in metrics.config_dirs():
            search_path.append(provider="lcmbench-metric", path=f"file://{folder}")
