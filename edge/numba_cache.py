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
import tempfile


def user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "bkpose", "numba")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = os.path.join(tempfile.gettempdir(), f"bkpose-numba-{uid}")
    os.makedirs(folder, exist_ok=True)
    return folder


def configure() -> str:
    """Point Numba's cache outside the package, before any kernel is decorated. Returns the folder."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = user_cache_dir()
        config = sys.modules.get("numba.core.config")
        if config is not None:  # numba was imported first: make it read the variable again
            config.reload_config()
    return os.environ["NUMBA_CACHE_DIR"]
