"""Where the project's shared data lives (recorded markets, ccxt's fixtures).

The repository sits beside ``shared/`` in the workspace (``<workspace>/main`` and
``<workspace>/shared``); a clone elsewhere finds it through ``EMS_SHARED_DIR``, then the
workspace's usual place. Tests that need a missing file skip with its path.
"""

from __future__ import annotations

import os
from pathlib import Path

_WORKSPACE_SHARED = Path("/work/shared")


def shared_dir() -> Path:
    """The first of ``$EMS_SHARED_DIR``, a ``shared/`` beside a parent folder, ``/work/shared``."""
    env = os.environ.get("EMS_SHARED_DIR")
    candidates = [Path(env)] if env else []
    candidates += [parent / "shared" for parent in Path(__file__).resolve().parents]
    candidates.append(_WORKSPACE_SHARED)
    for candidate in candidates:
        if (candidate / "data").is_dir():
            return candidate
    return candidates[-1]


SHARED_DATA = shared_dir() / "data"
MARKET = SHARED_DATA / "market"
CCXT_FIXTURES = SHARED_DATA / "ccxt-fixtures"
