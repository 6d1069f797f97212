"""How often plugins and sources were reloaded and how long each reload took, kept by the
bot for whoever reports it (the web front door's metrics). Reactor thread."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReloadTotals:
    """Reloads of one plugin or source that ended one way: how many, and their seconds
    in all."""

    count: int = 0
    seconds: float = 0.0


@dataclass
class ReloadStats:
    """Reloads by (``plugin`` or ``source``, name, ``ok`` or ``failed``)."""

    totals: dict[tuple[str, str, str], ReloadTotals] = field(default_factory=dict)

    def record(self, kind: str, name: str, seconds: float, ok: bool) -> None:
        """One reload of ``kind`` ``name`` took ``seconds`` and succeeded (``ok``) or not."""
        key = (kind, name, "ok" if ok else "failed")
        totals = self.totals.setdefault(key, ReloadTotals())
        totals.count += 1
        totals.seconds += seconds
