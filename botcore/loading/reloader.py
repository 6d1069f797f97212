"""Finding, importing and instantiating plugins and sources, and importing them afresh.

The reloader is the only code that imports plugin and source modules; the core learns of
them by name (``plugins.NAME``, ``sources.TYPE``) and never the other way round."""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import pkgutil
import site
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import MetaData
from twisted.logger import Logger

from botcore.config import config_path
from botcore.db.models import Base, forget_models, restore_models, snapshot_models
from botcore.db.revisions import (
    ENTRY_POINT_GROUP,
    PluginImportError,
    entry_points,
    load_entry_point,
)
from botcore.errors import PluginLoadError, PluginNotFound
from botcore.interfaces import ISource
from botcore.options import BoolOption, ListOption, Option, options_of
from botcore.processor import Processor, ProcessorOverrides

if TYPE_CHECKING:
    from botcore.interfaces import IBotContext, IBotControl
    from botcore.source import Source

PLUGIN_ENTRY_POINTS = "botcore.plugins"
SOURCE_ENTRY_POINTS = "botcore.sources"


def site_directories() -> list[Path]:
    """The folders pip installs into for this interpreter (its ``.pth`` files are read
    at startup only)."""
    found = list(site.getsitepackages())
    with contextlib.suppress(Exception):
        found.append(site.getusersitepackages())
    return [Path(d) for d in dict.fromkeys(found) if Path(d).is_dir()]


def _pth_files() -> set[Path]:
    return {pth for directory in site_directories() for pth in directory.glob("*.pth")}


class ModuleSwap:
    """The result of importing a plugin's (or source's) module tree afresh: the new top
    module, and what `rollback` needs to put the old tree back (its ``sys.modules``
    entries, the attributes of its parent package and its database models)."""

    def __init__(self, module: ModuleType, saved: dict[str, ModuleType],
                 parents: list[tuple[ModuleType, str, Any]], models: list[tuple[type, Any]],
                 new_names: set[str]) -> None:  # fmt: skip
        self.module = module
        self.saved = saved
        self.parents = parents
        self.models = models
        self.new_names = new_names

    def files(self) -> set[str]:
        """The source files of the new tree."""
        return _files(sys.modules.get(name) for name in self.new_names)

    def rollback(self) -> None:
        """Put the old modules back (after the new ones failed in setup). Reactor thread."""
        for name in self.new_names:
            sys.modules.pop(name, None)
        _restore(self.saved, self.parents, self.models, self.new_names)


_MISSING = object()


def _files(modules: Iterable[ModuleType | None]) -> set[str]:
    return {m.__file__ for m in modules if m is not None and m.__file__}


def _restore(
    saved: dict[str, ModuleType],
    parents: list[tuple[ModuleType, str, Any]],
    models: list[tuple[type, Any]],
    names: Iterable[str],
) -> None:
    sys.modules.update(saved)
    for parent, attribute, value in parents:
        if value is _MISSING:
            if attribute in vars(parent):
                delattr(parent, attribute)
        else:
            setattr(parent, attribute, value)
    restore_models(models, set(saved) | set(names))


class Reloader:
    """Plugin load rules (Ibid's). A plugin is loaded when ``autoload`` is on or ``load``
    names it, unless ``noload`` names it. Of a loaded plugin every processor is taken
    except those with ``autoload = False`` and those ``noload`` names as
    ``plugin.Processor``. A ``plugin.Processor`` entry in ``load`` takes that processor
    in every case, and only it when the plugin itself is not loaded by the rules above.

    Plugins are found in ``plugin_dirs`` (folders named in the config), then in the
    bundled package, then in installed distributions' ``botcore.plugins`` entry points
    (``name = module``); sources likewise in the bundled package and ``botcore.sources``
    entry points. A plugin is a module or a package. A plugin from a folder is imported
    under the bundled package's name (``botcore.plugins.NAME``)."""

    autoload = BoolOption("Load every plugin found unless it is listed in noload.", True)
    load = ListOption("Plugins (or plugin.Processor) to load in addition to the autoloaded.", [])
    noload = ListOption("Plugins (or plugin.Processor) never to load.", [])
    plugin_dirs = ListOption(
        "Extra folders of plugins (modules or packages), relative to the config file.", []
    )
    autoreload = BoolOption(
        "Reload a plugin when one of its files changes (for development).", False
    )

    log = Logger()

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        plugin_package: str = "botcore.plugins",
        source_package: str = "botcore.sources",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = dict(config or {})
        self.plugin_package = plugin_package
        self.source_package = source_package
        #: What relative ``plugin_dirs`` are relative to (the config file's folder).
        self.base_dir = Path(base_dir) if base_dir is not None else None
        #: Module name -> its old module while `reimport` (in another thread) imports its
        #: tree afresh: what `plugin_module` answers meanwhile.
        self._replaced: dict[str, ModuleType] = {}
        #: The ``.pth`` files Python read at startup, or `refresh_installed` since.
        self._seen_pth = _pth_files()

    # -- discovery --------------------------------------------------------------

    def refresh_installed(self) -> None:
        """See what pip installed since the bot started: forget the import system's
        cached folder listings (a new package or ``.dist-info``, so its entry points) and
        read the ``.pth`` files that are new, as Python does at startup; an editable
        install is one of those (a folder to add to sys.path, or an import line that
        puts setuptools' finder and path hook in place). Any thread."""
        importlib.invalidate_caches()
        for pth in sorted(_pth_files() - self._seen_pth):
            self._seen_pth.add(pth)
            try:
                site.addpackage(str(pth.parent), pth.name, None)
            except Exception:
                self.log.failure("reading {pth} failed", pth=str(pth))
        importlib.invalidate_caches()

    def directories(self) -> list[Path]:
        """The ``plugin_dirs`` that exist, as absolute paths."""
        found = []
        for entry in self.config.get("plugin_dirs") or []:
            path = config_path(entry, self.base_dir)
            if path.is_dir():
                found.append(path.absolute())
        return found

    def _entry_points(self, group: str) -> dict[str, str]:
        """name -> module of the entry points of ``group``."""
        try:
            points = entry_points(group)
        except Exception:  # a broken distribution must not stop discovery
            self.log.failure("reading entry points {group} failed", group=group)
            return {}
        return {point.name: point.value.partition(":")[0].strip() for point in points}

    def _dir_plugin(self, name: str) -> Path | None:
        for directory in self.directories():
            if (directory / f"{name}.py").is_file() or (
                directory / name / "__init__.py"
            ).is_file():
                return directory
        return None

    def plugin_names(self) -> list[str]:
        """Every plugin found (folders, bundled package, entry points), sorted."""
        names = set(_modules_in(importlib.import_module(self.plugin_package).__path__))
        names.update(_modules_in([str(d) for d in self.directories()]))
        names.update(n for n in self._entry_points(PLUGIN_ENTRY_POINTS) if n.isidentifier())
        return sorted(names)

    def plugin_location(self, name: str) -> tuple[str, Path | None]:
        """(module name, folder or None) of plugin NAME; `PluginNotFound` if unknown."""
        if not name.isidentifier():
            raise PluginNotFound(f"plugin {name!r} is not a valid module name")
        directory = self._dir_plugin(name)
        qualified = f"{self.plugin_package}.{name}"
        if directory is not None:
            return qualified, directory
        package = importlib.import_module(self.plugin_package)
        if any(info.name == name for info in pkgutil.iter_modules(package.__path__)):
            return qualified, None
        points = self._entry_points(PLUGIN_ENTRY_POINTS)
        if name not in points:  # installed since the bot started?
            self.refresh_installed()
            points = self._entry_points(PLUGIN_ENTRY_POINTS)
        if name in points:
            return points[name], None
        if qualified in sys.modules:  # e.g. a package that has no file
            return qualified, None
        known = ", ".join(self.plugin_names())
        raise PluginNotFound(f"no plugin {name!r} (available: {known})")

    def source_location(self, type_name: str) -> str:
        """The module of source type TYPE; `PluginNotFound` if unknown."""
        if not type_name.isidentifier():
            raise PluginNotFound(f"source type {type_name!r} is not a valid module name")
        package = importlib.import_module(self.source_package)
        if any(info.name == type_name for info in pkgutil.iter_modules(package.__path__)):
            return f"{self.source_package}.{type_name}"
        points = self._entry_points(SOURCE_ENTRY_POINTS)
        if type_name in points:
            return points[type_name]
        known = ", ".join(self.source_types())
        raise PluginNotFound(f"no source type {type_name!r} (available: {known})")

    # -- plugins --------------------------------------------------------------

    def plugin_module(self, name: str) -> ModuleType:
        """Plugin NAME's module (imported if it is not yet); `PluginNotFound` when there
        is no such plugin."""
        module_name, directory = self.plugin_location(name)
        # While a reimport runs, sys.modules holds the half-run new module: the old one
        # is what is loaded until the new one is swapped in.
        module = self._replaced.get(module_name) or sys.modules.get(module_name)
        if module is not None:
            return module
        return _import(module_name, directory)

    def reimport_plugin(self, name: str) -> ModuleSwap:
        """Import plugin NAME's whole module tree afresh (see `reimport`), from where it
        is installed now (pip may have installed it anew, editable or not)."""
        self.refresh_installed()
        module_name, directory = self.plugin_location(name)
        return self.reimport(module_name, directory, f"plugin {name}")

    def reimport_source(self, type_name: str) -> ModuleSwap:
        """Import source type TYPE's whole module tree afresh (see `reimport`)."""
        return self.reimport(self.source_location(type_name), None, f"source type {type_name}")

    def module_tree(self, module_name: str) -> list[str]:
        """The loaded modules of a plugin or source: its module, its package's submodules,
        and the private helper modules (``_name``) of the package it lives in that they
        use."""
        # A copy: another thread may be importing (a reload runs in the import pool).
        loaded = list(sys.modules)
        tree = [n for n in loaded if n == module_name or n.startswith(module_name + ".")]
        parent = module_name.rpartition(".")[0]
        if not parent:
            return tree
        helpers = set()
        for name in tree:
            module = sys.modules.get(name)
            if module is None:
                continue
            for value in list(vars(module).values()):
                helper = value.__name__ if isinstance(value, ModuleType) else None
                helper = helper or getattr(value, "__module__", None)
                if (
                    isinstance(helper, str)
                    and helper.startswith(parent + ".")
                    and helper.rpartition(".")[2].startswith("_")
                    and helper in sys.modules
                    and helper.count(".") == parent.count(".") + 1
                ):
                    helpers.add(helper)
        return tree + sorted(helpers - set(tree))

    def reimport(self, module_name: str, directory: Path | None, what: str) -> ModuleSwap:
        """Import a module tree afresh under its real names: the old modules leave
        ``sys.modules`` while the new ones import; if that fails the old ones are put
        back, their models mapped again, and `PluginLoadError` is raised. The caller
        either keeps the result or calls its `ModuleSwap.rollback`. Any thread, one import
        at a time (`Plugins` runs plugin imports in its import pool)."""
        old_names = self.module_tree(module_name)
        saved = {name: sys.modules[name] for name in old_names}
        parents: list[tuple[ModuleType, str, Any]] = []
        for name in old_names:
            parent_name, _, attribute = name.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None and parent_name not in saved:
                parents.append((parent, attribute, vars(parent).get(attribute, _MISSING)))
        if not any(name == module_name for name in old_names):
            parent_name, _, attribute = module_name.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None:
                parents.append((parent, attribute, vars(parent).get(attribute, _MISSING)))
        models = snapshot_models(old_names)
        old_files = _files(saved.values())
        for file in old_files:
            # Cached bytecode is checked by the source's mtime in whole seconds and its
            # size: an edit within the same second of the same size would not be seen.
            with contextlib.suppress(OSError, ValueError, NotImplementedError):
                os.remove(importlib.util.cache_from_source(file))
        if module_name in saved:
            self._replaced[module_name] = saved[module_name]
        try:
            return self._import_afresh(module_name, directory, what, saved, parents, models)
        finally:
            self._replaced.pop(module_name, None)

    def _import_afresh(
        self,
        module_name: str,
        directory: Path | None,
        what: str,
        saved: dict[str, ModuleType],
        parents: list[tuple[ModuleType, str, Any]],
        models: list[tuple[type, Any]],
    ) -> ModuleSwap:
        old_files = _files(saved.values())
        for name in saved:
            del sys.modules[name]
        before = set(sys.modules)
        importlib.invalidate_caches()
        try:
            module = _import(module_name, directory)
        except BaseException as e:
            new_names = set(sys.modules) - before
            files = _files(sys.modules.get(n) for n in new_names) | old_files
            for name in new_names:
                sys.modules.pop(name, None)
            _restore(saved, parents, models, new_names)
            if isinstance(e, KeyboardInterrupt):
                raise
            raise PluginLoadError(what, e, files) from e
        new_names = set(self.module_tree(module_name)) | (set(sys.modules) - before)
        new_names &= set(sys.modules)
        return ModuleSwap(module, saved, parents, models, new_names)

    def forget_plugin(self, name: str) -> None:
        """Drop plugin NAME's modules (and their database models) so that loading it again
        imports its code afresh (at unload)."""
        module_name, _ = self.plugin_location(name)
        for module in self.module_tree(module_name):
            forget_models(module)
            sys.modules.pop(module, None)

    def import_models(self) -> MetaData:
        """Import the core's models, every plugin module and every plugin package's
        ``botcore.migrations`` entry point, so all their tables are on `Base.metadata`;
        return that metadata (to compare models with a database, dump or load it).
        `PluginImportError` names a plugin that cannot be imported (its tables would
        look like extra tables)."""
        importlib.import_module("botcore.db.storage")
        importlib.import_module("botcore.accounts.models")
        importlib.import_module("botcore.bus.log")
        importlib.import_module("botcore.web.tokens")
        importlib.import_module("botcore.web.sessions")
        for name in self.plugin_names():
            try:
                self.plugin_module(name)
            except Exception as e:
                raise PluginImportError(
                    f"plugin {name} cannot be imported, so its tables cannot be compared: "
                    f"{type(e).__name__}: {e}"
                ) from e
        for entry_point in entry_points(ENTRY_POINT_GROUP):
            load_entry_point(entry_point)
        return Base.metadata

    def processor_classes(self, module: ModuleType) -> list[type[Processor]]:
        """The processors a plugin module defines, in definition order."""
        return [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Processor)
            and value.__module__ == module.__name__
            and not value.__dict__.get("abstract", False)
        ]

    def plugin_options(self, name: str) -> dict[str, Option]:
        """Every option a ``[plugin:NAME]`` section may set."""
        module = self.plugin_module(name)
        return options_of(ProcessorOverrides, *self.processor_classes(module))

    def wanted_plugins(self) -> list[str]:
        """The plugins to load at startup, by the load rules: found ones (sorted) first,
        then those only ``load`` names, in its order."""
        candidates = self.plugin_names() if self.autoload else []
        for entry in self.load:
            plugin = entry.partition(".")[0]
            if plugin not in candidates:
                candidates.append(plugin)
        return [name for name in candidates if self._whole_plugin(name) or self._named(name)]

    def _whole_plugin(self, name: str) -> bool:
        # Every autoloaded processor of the plugin, as opposed to just those named.
        return name not in self.noload and (self.autoload or name in self.load)

    def _named(self, name: str) -> list[str]:
        return [entry for entry in self.load if entry.startswith(name + ".")]

    def processors(
        self,
        name: str,
        context: IBotContext,
        config: dict[str, Any],
        module: ModuleType | None = None,
        control: IBotControl | None = None,
    ) -> list[Processor]:
        """Instantiate the processors of plugin NAME (of ``module``, by default the one
        imported) that the load rules allow. Each gets ``context`` as its bot, or
        ``control`` if its class asks for the administrative operations (``control =
        True``) and one is given; otherwise such a processor is refused."""
        module = module or self.plugin_module(name)
        whole = self._whole_plugin(name) or not self._named(name)
        found = []
        for cls in self.processor_classes(module):
            qualified = f"{name}.{cls.__name__}"
            if qualified in self.load or (whole and cls.autoload and qualified not in self.noload):
                if cls.control:
                    if control is None:
                        raise ValueError(
                            f"{qualified} needs the administrative interface, not given here"
                        )
                    found.append(cls(name, control, config))
                else:
                    found.append(cls(name, context, config))
        return found

    # -- sources --------------------------------------------------------------

    def source_types(self) -> list[str]:
        """Every source type found (bundled package, entry points), sorted."""
        names = set(_modules_in(importlib.import_module(self.source_package).__path__))
        names.update(n for n in self._entry_points(SOURCE_ENTRY_POINTS) if n.isidentifier())
        return sorted(names)

    def source_class(self, type_name: str, module: ModuleType | None = None) -> type[Source]:
        """The source class of ``sources.TYPE`` (or of ``module``): the one it defines
        that implements ISource."""
        if module is None:
            module_name = self.source_location(type_name)
            module = sys.modules.get(module_name) or _import(module_name, None)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and ISource.implementedBy(value)
            ):
                return cast("type[Source]", value)
        raise PluginNotFound(f"module {module.__name__} defines no source")


def _modules_in(path: Iterable[str]) -> list[str]:
    return [
        info.name for info in pkgutil.iter_modules(list(path)) if not info.name.startswith("_")
    ]


def _import(module_name: str, directory: Path | None) -> ModuleType:
    """Import ``module_name``; from ``directory`` when given (a plugin folder: the module
    gets the name although the folder is not on its package's path)."""
    if directory is None:
        return importlib.import_module(module_name)
    parent_name, _, leaf = module_name.rpartition(".")
    parent = importlib.import_module(parent_name) if parent_name else None
    spec = importlib.machinery.PathFinder.find_spec(module_name, [str(directory)])
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module {leaf} in {directory}", name=module_name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    if parent is not None:
        setattr(parent, leaf, module)
    return module
