"""The test suite itself: every test is collected once.

A module-level loop variable that is left holding a test class (``for _case in (...)``)
makes trial collect that class a second time under the variable's name; with ``-j``
trial's distributed reporter then fails on the repeated test id with a ``KeyError``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SynchronousTestCase

import tests


def _cases(suite: Any) -> Iterator[Any]:
    for test in suite:
        if hasattr(test, "_tests"):
            yield from _cases(test)
        else:
            yield test


class CollectionTests(SynchronousTestCase):
    def test_every_test_collected_once(self) -> None:
        suite = TestLoader().loadPackage(tests, recurse=True)
        ids = Counter(
            (type(case), case._testMethodName)
            for case in _cases(suite)
            if hasattr(case, "_testMethodName")
        )
        twice = [
            f"{cls.__module__}.{cls.__qualname__}.{name}"
            for (cls, name), n in ids.items()
            if n > 1
        ]
        self.assertEqual(sorted(twice), [])
        self.assertGreater(len(ids), 1000, "the whole suite was loaded")
