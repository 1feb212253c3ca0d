"""Where Numba keeps its on-disk cache of compiled decoder and preprocessing kernels.

Numba writes `cache=True` functions next to their source by default, which for an installed
package is `site-packages/edge/**/__pycache__`: a later reinstall (or `pip install -e`) leaves
those folders behind, and a leftover `site-packages/edge` holding only caches shadows the real
package. So unless `NUMBA_CACHE_DIR` is set, the cache goes to a per-user folder
(`$XDG_CACHE_HOME/bkpose/numba`, else `~/.cache/bkpose/numba`), or a per-user temporary folder
where the home is not writable (a read-only appliance root).
"""

from __future__ import annotations

import os
import sys

from edge.files import user_cache_dir


def configure() -> str:
    """Point Numba's cache outside the package, before any kernel is decorated. Returns the folder."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = user_cache_dir("numba")
        config = sys.modules.get("numba.core.config")
        if config is not None:  # numba was imported first: make it read the variable again
            config.reload_config()
    return os.environ["NUMBA_CACHE_DIR"]
