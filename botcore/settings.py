"""The bot's configuration schema: the fixed sections' options, which options each
section may hold (plugins and sources are asked through the reloader), and `read_config`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from twisted.logger import LogLevel

from botcore.accounts.permissions import Permissions
from botcore.bus.bridges import bridge_options
from botcore.bus.catalogue import Catalogue
from botcore.bus.log import EventLog
from botcore.bus.reactors import reactor_options
from botcore.bus.sections import EventSection, TopicSection, declare_from_config
from botcore.config import (
    Config,
    ConfigError,
    ConfigErrors,
    SectionResolver,
    UnknownSection,
    load_config,
)
from botcore.db.service import Database
from botcore.dispatch.dispatcher import Dispatcher
from botcore.errors import PluginNotFound
from botcore.loading.reloader import Reloader
from botcore.options import ChoiceOption, ListOption, Option, options_of
from botcore.source import SourceSection


class BotSection:
    """Keys of ``[bot]`` read by the root service itself."""

    name = Option("The bot's name: people address it by this.", "botcore")
    names = ListOption("Other names the bot answers to when addressed.", [])


#: Twisted's level names, lowest first: what ``[logging] level`` accepts.
LOG_LEVELS = tuple(level.name for level in LogLevel.iterconstants())


class LoggingSection:
    """Keys of ``[logging]``."""

    level = ChoiceOption(
        "Lowest level logged: debug, info, warn, error or critical.", "info", choices=LOG_LEVELS
    )
    format = ChoiceOption(
        "How log lines are written to a file or stdout: text, or json (one JSON object "
        "per line, for log shippers; read at start).",
        "text",
        choices=("text", "json"),
    )


FIXED_SECTIONS = ("bot", "auth", "logging", "events")
SECTION_KINDS = ("database", "source", "plugin", "event", "topic", "reactor", "bridge")


def section_resolver(reloader: Reloader) -> SectionResolver:
    """The options each section of a bot's config may hold (plugins and sources are asked
    through the reloader)."""
    fixed = {
        "bot": options_of(BotSection, Dispatcher, Reloader),
        "auth": options_of(Permissions),
        "logging": options_of(LoggingSection),
        "events": options_of(EventLog),
    }

    def resolve(section: str, values: Mapping[str, str]) -> dict[str, Option]:
        if section == "bot" and "plugin_dirs" in values:
            # The [plugin:NAME] sections after it may be of plugins in these folders.
            # (A bad value is reported with the section's other errors.)
            with contextlib.suppress(ValueError):
                reloader.config["plugin_dirs"] = Reloader.plugin_dirs.parse(values["plugin_dirs"])
        if section in fixed:
            return fixed[section]
        kind, sep, name = section.partition(":")
        if not sep or not name or kind not in SECTION_KINDS:
            expected = ", ".join(
                [f"[{s}]" for s in FIXED_SECTIONS] + [f"[{k}:NAME]" for k in SECTION_KINDS]
            )
            raise UnknownSection(f"unknown section (expected one of {expected})")
        if kind == "database":
            return options_of(Database)
        if kind == "event":
            return options_of(EventSection)
        if kind == "topic":
            return options_of(TopicSection)
        if kind == "reactor":
            return reactor_options(values)
        if kind == "bridge":
            return bridge_options(values)
        try:
            if kind == "plugin":
                return reloader.plugin_options(name)
            type_name = values.get("type", "").strip()
            if not type_name:
                # Without a type the other keys cannot be checked: report only the type.
                option = SourceSection.type
                raise UnknownSection(f"missing required {option.kind} ({option.help})", "type")
            return options_of(SourceSection, reloader.source_class(type_name))
        except PluginNotFound as e:
            raise UnknownSection(str(e), None if kind == "plugin" else "type") from None
        except UnknownSection:
            raise
        except Exception as e:
            # A plugin or source module that fails to import is a problem of this section,
            # reported with the others, not a traceback.
            if kind == "plugin":
                what, key = f"plugin {name!r}", None
            else:
                what, key = f"source type {values.get('type')!r}", "type"
            raise UnknownSection(f"cannot load {what}: {type(e).__name__}: {e}", key) from None

    return resolve


def read_config(
    path: str | os.PathLike[str],
    *,
    local: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    reloader: Reloader | None = None,
) -> Config:
    """Load and validate a bot configuration; `ConfigErrors` lists every problem.
    ``reloader`` finds the plugins and sources sections are checked against."""
    reloader = reloader or Reloader()
    if reloader.base_dir is None:
        reloader.base_dir = Path(path).absolute().parent
    config = load_config(
        path,
        section_resolver(reloader),
        local=local,
        environ=environ,
        implicit_sections=(*FIXED_SECTIONS, "database:main"),
    )
    # What only the sections together can tell: an [event:NAME]'s parent is known.
    problems = declare_from_config(Catalogue(), config)
    if problems:
        raise ConfigErrors([ConfigError(str(config.path), *problem) for problem in problems])
    return config
