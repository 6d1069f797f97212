"""Which installed entry points a test sees: botcore's own suite uses an explicit set (none
of what else is installed), and a test that installs a fake distribution adds its names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from botcore.db.migrate import ENTRY_POINTS_VARIABLE

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase


def only_entry_points(*names: str) -> None:
    """From now on in this process (and its children), botcore uses only the entry points
    named (none when no name is given), whatever is installed: call it once where a test
    suite starts (botcore's ``tests/__init__.py`` does)."""
    os.environ[ENTRY_POINTS_VARIABLE] = ",".join(names)


def use_entry_points(testcase: SynchronousTestCase, *names: str) -> None:
    """Add ``names`` to the entry points botcore uses, for this test only (when every
    installed entry point is used already, there is nothing to add)."""
    current = os.environ.get(ENTRY_POINTS_VARIABLE)
    if current is None:
        return
    os.environ[ENTRY_POINTS_VARIABLE] = ",".join([current, *names]).strip(",")
    testcase.addCleanup(os.environ.__setitem__, ENTRY_POINTS_VARIABLE, current)
