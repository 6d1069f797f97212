"""Times said the way people say them: "2 hours ago", "1 hour and 30 minutes".

Shared by plugins that tell users when something happened or how long something lasts."""

from __future__ import annotations

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def _plural(count: int, name: str) -> str:
    return f"{count} {name}{'' if count == 1 else 's'}"


def ago(seconds: float) -> str:
    """``7300`` -> ``"2 hours ago"``: the largest whole unit only (years, days, hours,
    minutes); under five seconds is ``"just now"``."""
    seconds = max(int(seconds), 0)
    for name, size in (("year", 31536000), *_UNITS[:3]):
        if seconds >= size:
            return f"{_plural(seconds // size, name)} ago"
    return "just now" if seconds < 5 else f"{seconds} seconds ago"


def duration(seconds: float) -> str:
    """``5400`` -> ``"1 hour and 30 minutes"``: whole seconds (rounded), largest units
    first, zero units left out."""
    remaining = max(round(seconds), 0)
    parts = []
    for name, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(_plural(count, name))
    if not parts:
        return "0 seconds"
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
