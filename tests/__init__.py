"""botcore's tests. They test the core and the bundled plugins and sources against an
explicit set of installed entry points (none), so third-party plugins and their migration
branches installed in the same environment change nothing here; a test that installs a
fake distribution names its entry points with ``botcore.testing.use_entry_points``."""

from botcore.testing import only_entry_points

only_entry_points()
