"""Finding, importing and instantiating plugins and sources.

The reloader is the only code that imports plugin and source modules; the core learns of
them by name (``plugins.NAME``, ``sources.TYPE``) and never the other way round."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from botcore.interfaces import ISource
from botcore.options import BoolOption, ListOption, Option, options_of
from botcore.processor import Processor, ProcessorOverrides

if TYPE_CHECKING:
    from botcore.bot import Bot
    from botcore.source import Source


class PluginNotFound(LookupError):
    """No plugin or source module of that name."""


class Reloader:
    """Plugin load rules (Ibid's). A plugin is loaded when ``autoload`` is on or ``load``
    names it, unless ``noload`` names it. Of a loaded plugin every processor is taken
    except those with ``autoload = False`` and those ``noload`` names as
    ``plugin.Processor``. A ``plugin.Processor`` entry in ``load`` takes that processor
    in every case, and only it when the plugin itself is not loaded by the rules above."""

    autoload = BoolOption("Load every plugin found unless it is listed in noload.", True)
    load = ListOption("Plugins (or plugin.Processor) to load in addition to the autoloaded.", [])
    noload = ListOption("Plugins (or plugin.Processor) never to load.", [])

    log = Logger()

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        plugin_package: str = "plugins",
        source_package: str = "sources",
    ) -> None:
        self.config = dict(config or {})
        self.plugin_package = plugin_package
        self.source_package = source_package

    # -- plugins --------------------------------------------------------------

    def plugin_names(self) -> list[str]:
        """Every plugin module found in the plugin package, sorted."""
        package = importlib.import_module(self.plugin_package)
        return sorted(
            info.name
            for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_")
        )

    def plugin_module(self, name: str) -> ModuleType:
        """Import ``plugins.NAME``; `PluginNotFound` when there is no such plugin."""
        return self._import(self.plugin_package, name, "plugin")

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

    def processors(self, name: str, bot: Bot | None, config: dict[str, Any]) -> list[Processor]:
        """Instantiate the processors of plugin NAME that the load rules allow."""
        module = self.plugin_module(name)
        whole = self._whole_plugin(name)
        found = []
        for cls in self.processor_classes(module):
            qualified = f"{name}.{cls.__name__}"
            if qualified in self.load or (whole and cls.autoload and qualified not in self.noload):
                found.append(cls(name, bot, config))
        return found

    # -- sources --------------------------------------------------------------

    def source_types(self) -> list[str]:
        """Every source type found in the source package, sorted."""
        package = importlib.import_module(self.source_package)
        return sorted(
            info.name
            for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_")
        )

    def source_class(self, type_name: str) -> type[Source]:
        """The source class of ``sources.TYPE``: the one it defines that implements ISource."""
        module = self._import(self.source_package, type_name, "source type")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and ISource.implementedBy(value)
            ):
                return value
        raise PluginNotFound(f"module {module.__name__} defines no source")

    # -- importing ------------------------------------------------------------

    def _import(self, package: str, name: str, what: str) -> ModuleType:
        if not name.isidentifier():
            raise PluginNotFound(f"{what} {name!r} is not a valid module name")
        qualified = f"{package}.{name}"
        try:
            return importlib.import_module(qualified)
        except ModuleNotFoundError as e:
            if e.name in (package, qualified):
                if what == "plugin":
                    known = ", ".join(self.plugin_names())
                else:
                    known = ", ".join(self.source_types())
                raise PluginNotFound(f"no {what} {name!r} (available: {known})") from None
            raise
