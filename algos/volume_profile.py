"""Intraday volume profiles: the share of a day's volume traded in each time-of-day bin.

A :class:`VolumeProfile` holds ``n = 1440 / bin_minutes`` non-negative shares summing to one,
bin 0 starting at 00:00 UTC. Within a bin volume is taken to arrive evenly, so the cumulative
volume curve is piecewise linear and continuous; across midnight it wraps to the next day. The
expected share of a window ``[start, end]`` traded by ``at`` is then
``(C(at) - C(start)) / (C(end) - C(start))`` with ``C`` that cumulative curve (clamped to
``[0, 1]``; a window with no expected volume falls back to elapsed time).

:meth:`VolumeProfile.from_bars` builds one from historical bars with numpy: each bar's volume is
added to the bin of its start time, every bin is averaged over the days on which it was observed
(so a partial first or last day does not bias its bins), optionally smoothed by a centred,
circular moving average, and normalised.

:func:`ems.profiles.default_volume_profile` loads the profile shipped with the package
(``ems/data/volume_profile_btc_1m.json``; see ``ems/data/README.md``). It reads a file and is
meant for the composition root; algorithms only ever see a ``VolumeCurve``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from algos.base import elapsed_fraction
from ems.domain import ensure_utc

MINUTES_PER_DAY = 1440
SECONDS_PER_DAY = 86_400
FORMAT = "ems.volume-profile/1"


class VolumeProfile:
    """A normalised time-of-day volume profile (implements ``algos.base.VolumeCurve``)."""

    __slots__ = ("_cumulative", "bin_minutes", "days", "shares", "source")

    def __init__(
        self,
        shares: Sequence[float] | npt.NDArray[np.float64],
        bin_minutes: int = 1,
        *,
        days: int = 0,
        source: str = "",
    ) -> None:
        if bin_minutes < 1 or MINUTES_PER_DAY % bin_minutes:
            raise ValueError(f"bin_minutes must divide 1440, got {bin_minutes}")
        values = np.asarray(shares, dtype=np.float64)
        if values.shape != (MINUTES_PER_DAY // bin_minutes,):
            raise ValueError(
                f"a {bin_minutes}-minute profile needs {MINUTES_PER_DAY // bin_minutes} shares, "
                f"got {values.shape}"
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("shares must be finite and non-negative")
        total = float(values.sum())
        if total <= 0:
            raise ValueError("a volume profile needs some volume")
        self.shares: npt.NDArray[np.float64] = values / total
        self.bin_minutes = bin_minutes
        self.days = days
        self.source = source
        self._cumulative: npt.NDArray[np.float64] = np.concatenate(([0.0], np.cumsum(self.shares)))

    @property
    def bin_count(self) -> int:
        """Number of bins in a day."""
        return int(self.shares.shape[0])

    def _curve(self, moment: datetime) -> float:
        """Cumulative expected volume (in days of volume) from the epoch to ``moment``."""
        seconds = ensure_utc(moment).timestamp()
        day, into_day = divmod(seconds, SECONDS_PER_DAY)
        position = into_day / (self.bin_minutes * 60)
        index = min(int(position), self.bin_count - 1)
        within = position - index
        return day + float(self._cumulative[index]) + float(self.shares[index]) * within

    def cumulative_share(self, start: datetime, end: datetime, at: datetime) -> float:
        """Expected share (0..1) of the volume of ``[start, end]`` traded by ``at``."""
        if at <= start:
            return 0.0
        if at >= end:
            return 1.0
        first = self._curve(start)
        total = self._curve(end) - first
        if total <= 1e-12:
            return float(elapsed_fraction(start, end, at))
        return min(1.0, max(0.0, (self._curve(at) - first) / total))

    @classmethod
    def from_bars(
        cls,
        timestamps: Sequence[datetime] | npt.NDArray[Any],
        volumes: Sequence[float] | npt.NDArray[Any],
        bin_minutes: int = 1,
        *,
        smooth_bins: int = 0,
        source: str = "",
    ) -> VolumeProfile:
        """Average historical bars by time of day into a normalised profile.

        ``timestamps`` are the bars' start times (aware datetimes, or numpy ``datetime64`` in
        UTC); ``volumes`` their traded volume in any unit. Each bin's volume is averaged over the
        days on which the bin was observed. ``smooth_bins`` > 0 applies a centred circular moving
        average of ``2 * smooth_bins + 1`` bins before normalising.
        """
        if bin_minutes < 1 or MINUTES_PER_DAY % bin_minutes:
            raise ValueError(f"bin_minutes must divide 1440, got {bin_minutes}")
        minutes = _epoch_minutes(timestamps)
        volume = np.asarray(volumes, dtype=np.float64)
        if minutes.shape != volume.shape or minutes.size == 0:
            raise ValueError("timestamps and volumes must be non-empty and of equal length")
        if not np.all(np.isfinite(volume)) or np.any(volume < 0):
            raise ValueError("volumes must be finite and non-negative")
        n = MINUTES_PER_DAY // bin_minutes
        day = minutes // MINUTES_PER_DAY
        bins = (minutes % MINUTES_PER_DAY) // bin_minutes
        totals = np.bincount(bins, weights=volume, minlength=n)
        # Days on which each bin was observed at least once.
        observed = np.unique(day * n + bins) % n
        day_counts = np.bincount(observed, minlength=n)
        mean = np.divide(totals, day_counts, out=np.zeros(n), where=day_counts > 0)
        if smooth_bins > 0:
            width = 2 * smooth_bins + 1
            padded = np.concatenate((mean[-smooth_bins:], mean, mean[:smooth_bins]))
            mean = np.convolve(padded, np.ones(width) / width, mode="valid")
        return cls(mean, bin_minutes, days=int(np.unique(day).size), source=source)

    def to_json(self) -> str:
        """Serialise (shares rounded to 10 significant digits)."""
        return json.dumps(
            {
                "format": FORMAT,
                "timezone": "UTC",
                "bin_minutes": self.bin_minutes,
                "days": self.days,
                "source": self.source,
                "shares": [float(f"{s:.10g}") for s in self.shares],
            },
            indent=None,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> VolumeProfile:
        """Read a profile written by :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a volume profile (expected format {FORMAT!r})")
        return cls(
            data["shares"],
            int(data["bin_minutes"]),
            days=int(data.get("days", 0)),
            source=str(data.get("source", "")),
        )

    def __repr__(self) -> str:
        return f"VolumeProfile(bin_minutes={self.bin_minutes}, days={self.days})"


def _epoch_minutes(timestamps: Sequence[datetime] | npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    if isinstance(timestamps, np.ndarray) and np.issubdtype(timestamps.dtype, np.datetime64):
        return timestamps.astype("datetime64[m]").astype(np.int64)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return np.fromiter(
        ((ensure_utc(t) - epoch) // timedelta(minutes=1) for t in timestamps),
        dtype=np.int64,
        count=len(timestamps),
    )
