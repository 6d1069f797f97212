"""Plugins installed while the bot runs: ``load NAME`` finds one pip installed after the
start (a regular install: a new package and .dist-info; an editable one: a new .pth file
whose finder maps the module to its source folder), and ``reload`` picks up an edit of an
editable install's source."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from botcore.loading import reloader as reloader_module
from botcore.testing import PluginTestCase, use_entry_points

PLUGIN = '''
"""Answers "late" (installed after the bot started)."""

from botcore.processor import Processor, match


class Late(Processor):
    @match("late")
    def late(self, event):
        event.addresponse("{answer}")
'''

# What setuptools' editable install writes, cut down: a finder module and a .pth line
# that installs it into sys.meta_path (once), mapping the package to its source folder.
FINDER = """
import importlib.util
import sys

MAPPING = {mapping!r}


class _EditableFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in MAPPING:
            return importlib.util.spec_from_file_location(
                fullname, MAPPING[fullname] + "/__init__.py",
                submodule_search_locations=[MAPPING[fullname]],
            )
        return None


def install():
    if not any(getattr(f, "__name__", "") == "_EditableFinder" for f in sys.meta_path):
        sys.meta_path.append(_EditableFinder)
"""


def dist_info(directory: Path, project: str, module: str, name: str) -> None:
    info = directory / f"{project}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[botcore.plugins]\n{name} = {module}\n")


class InstalledAfterStartTests(PluginTestCase):
    """A plugin pip installs into the bot's site-packages after it started."""

    load = ()

    def setUp(self) -> None:
        # A site-packages folder of the test's own, already on sys.path at "startup".
        self.site = Path(self.mktemp()).absolute() / "site-packages"
        self.site.mkdir(parents=True)
        path, meta_path = list(sys.path), list(sys.meta_path)
        sys.path.append(str(self.site))
        self.patch(reloader_module, "site_directories", lambda: [self.site])
        use_entry_points(self, "late", "late2", "lateedit")

        def clean() -> None:
            sys.path[:] = path
            sys.meta_path[:] = meta_path
            for name in [
                n
                for n in sys.modules
                if n.split(".")[0] in ("lateplugin", "lateplugin2", "lateedit")
            ]:
                del sys.modules[name]
            sys.modules.pop("__editable___lateedit_finder", None)
            importlib.invalidate_caches()

        self.addCleanup(clean)
        super().setUp()

    def load_now(self, name: str) -> None:
        self.successResultOf(self.bot.plugins.load_plugin(name))

    def test_regular_install(self) -> None:
        """A package and .dist-info written after the start are found by load."""
        self.assertNotIn("installed", self.responses("late"))
        package = self.site / "lateplugin"
        package.mkdir()
        (package / "__init__.py").write_text(PLUGIN.replace("{answer}", "installed"))
        dist_info(self.site, "botcore_late", "lateplugin", "late")
        self.load_now("late")
        self.assertResponseMatches("late", "^installed$")

    def test_editable_install_and_reload(self) -> None:
        """An editable install (a new .pth whose import line installs a finder) is found
        by load without a restart, and reload picks up an edit of its source."""
        source = Path(self.mktemp()).absolute() / "checkout" / "lateedit"
        source.mkdir(parents=True)
        (source / "__init__.py").write_text(PLUGIN.replace("{answer}", "first"))
        (self.site / "__editable___lateedit_finder.py").write_text(
            FINDER.format(mapping={"lateedit": str(source)})
        )
        (self.site / "__editable__.botcore_lateedit-1.0.pth").write_text(
            "import __editable___lateedit_finder; __editable___lateedit_finder.install()\n"
        )
        dist_info(self.site, "botcore_lateedit", "lateedit", "lateedit")
        self.load_now("lateedit")
        self.assertResponseMatches("late", "^first$")
        (source / "__init__.py").write_text(PLUGIN.replace("{answer}", "edited, longer"))
        self.successResultOf(self.bot.plugins.reload_plugin("lateedit"))
        self.assertResponseMatches("late", "^edited, longer$")

    def test_path_pth(self) -> None:
        """An editable install that is a plain path line in a new .pth (setuptools'
        lenient mode) is found too."""
        checkout = Path(self.mktemp()).absolute() / "checkout2"
        (checkout / "lateplugin2").mkdir(parents=True)
        (checkout / "lateplugin2" / "__init__.py").write_text(PLUGIN.replace("{answer}", "path"))
        (self.site / "botcore_late2.pth").write_text(f"{checkout}\n")
        dist_info(self.site, "botcore_late2", "lateplugin2", "late2")
        self.load_now("late2")
        self.assertResponseMatches("late", "^path$")

    def test_unknown_still_refused(self) -> None:
        """A name nothing installs is refused as before, naming what there is."""
        failure = self.failureResultOf(self.bot.plugins.load_plugin("nosuchplugin"))
        self.assertIn("no plugin 'nosuchplugin'", str(failure.value))
