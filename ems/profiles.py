"""Reference data shipped with the package, loaded at the edge for the pure algorithms."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from algos.volume_profile import VolumeProfile

DEFAULT_PROFILE_FILE = "volume_profile_btc_1m.json"


@lru_cache(maxsize=1)
def default_volume_profile() -> VolumeProfile:
    """The packaged BTC intraday volume profile (1-minute bins), derived from FTX BTC-PERP bars
    (LGPL-3.0 data; see ``ems/data/README.md``)."""
    text = (resources.files("ems") / "data" / DEFAULT_PROFILE_FILE).read_text("utf-8")
    return VolumeProfile.from_json(text)
