"""Running the bot from chat: list, load, unload and reload plugins and sources, connect
and disconnect sources, read and change the configuration, and shut the bot down."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import blockingCallFromThread

from botcore.accounts.secrets import TAKEN_CONFIG_SECRET, Secret
from botcore.config import (
    ConfigErrors,
    UnknownSection,
    default_local_path,
    escape_env,
    split_option_path,
)
from botcore.errors import PluginLoadError, PluginNotFound, PluginNotLoaded
from botcore.event import Event, EventType
from botcore.interfaces import IBotControl
from botcore.options import Option, redact
from botcore.processor import Priority, Processor, authorise, example, handler, match

_SAY_SECTION_KEY = "Say it as section.key, e.g. bot.name or plugin:core.limit_time"
#: The ``event.extra`` keys where ``get config`` and ``set config`` leave what they did as
#: data, for callers that are programs (the web API): an option's description, or an
#: error's HTTP-like status, message and field.
CONFIG_RESULT = "config"
CONFIG_ERROR = "config_error"
# What a value set from chat may not hold: anything that would end or break its line in
# the INI file (or in a log).
_UNWRITABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_HEADER = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*(?:[#;].*)?$")


def set_ini_value(text: str, section: str, key: str, value: str) -> str:
    """``text`` (an INI file) with ``key`` of ``[section]`` set to ``value``; every other
    line, comments included, is kept as it is. A key already set is replaced in place
    (with its continuation lines); a new key goes after the section's last setting; a
    new section goes at the end. A value of several lines is indented on the lines after
    the first."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    value_lines = value.split("\n")
    new = [f"{key} = {value_lines[0]}\n"] + [f"    {line}\n" for line in value_lines[1:]]
    start = end = None
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header is None:
            continue
        if start is not None:
            end = index
            break
        if header.group("name").strip() == section:
            start = index
    if start is None:
        prefix = "" if not lines or lines[-1].strip() == "" else "\n"
        return "".join(lines) + f"{prefix}[{section}]\n" + "".join(new)
    end = len(lines) if end is None else end
    key_pattern = re.compile(rf"^{re.escape(key)}\s*[=:]")
    last_setting = start
    index = start + 1
    while index < end:
        line = lines[index]
        if key_pattern.match(line):
            stop = index + 1
            while stop < end and lines[stop][:1] in (" ", "\t") and lines[stop].strip():
                stop += 1
            lines[index:stop] = new
            return "".join(lines)
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            last_setting = index
        index += 1
    lines[last_setting + 1 : last_setting + 1] = new
    return "".join(lines)


class ControlProcessor(Processor):
    """What the admin plugin's processors share: the administrative bot, work on the
    reactor, and reading and changing the configuration."""

    abstract = True
    # Its bot is the administrative interface, not only the context other plugins get.
    control = True
    bot: IBotControl

    # -- on the reactor ---------------------------------------------------------------

    def _on_reactor(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function`` on the reactor thread and wait for its result (a coroutine is
        run to completion); its exception is raised here."""

        def call() -> Any:
            result = function(*args)
            if hasattr(result, "__await__"):
                return ensureDeferred(result)
            return result

        return blockingCallFromThread(self.bot.reactor, call)

    # -- configuration ----------------------------------------------------------------

    def _option(self, section: str, key: str) -> Option:
        """The option ``key`` of ``section`` (ValueError with a plain message if none)."""
        config = self.bot.config
        values = {"type": str(config.section(section).get("type", ""))}
        try:
            options = self.bot.section_options(section, values)
        except UnknownSection as e:
            raise ValueError(f"[{section}]: {e}") from None
        if key not in options:
            known = ", ".join(sorted(options)) or "none"
            raise ValueError(f"[{section}] has no option {key} (it has: {known})")
        return options[key]

    def _is_secret(self, section: str, key: str, option: Option) -> bool:
        return option.secret or (section, key) in self.bot.config.secrets

    def _shown(self, section: str, key: str, option: Option, value: Any) -> str | None:
        """How ``value`` of the option may be shown: None for a secret (a database URL
        shows, with its password masked)."""
        if option.secret:
            return option.display(value)
        if (section, key) in self.bot.config.secrets:
            return None
        return _format(option, value)

    def describe(self, section: str, key: str, option: Option) -> dict[str, Any]:
        """The option as data: its section and name, value (None for a secret), its
        type, default (None for a secret) and help."""
        value = self.bot.config.section(section).get(key, option.default)
        secret = self._is_secret(section, key, option)
        return {
            "section": section,
            "option": key,
            "value": None if secret else _json_value(option, value),
            "shown": self._shown(section, key, option, value),
            "secret": secret,
            "type": option.kind,
            "default": None if option.secret else _json_value(option, option.default),
            "help": option.help,
        }

    def set_value(self, event: Event, path: str, value: str) -> None:
        """``set config <path> to <value>``: check the value, write it to the local
        override file (never expanded: ``${ENV:...}`` stays as it is), reload, and put
        the file back if the config would not load. ``""`` sets an empty value. A
        secret's value is in no reply. Worker thread."""
        found = split_option_path(path)
        if found is None:
            _refuse(event, 400, _SAY_SECTION_KEY, "key")
            event.addresponse(_SAY_SECTION_KEY)
            return
        section, key = found
        value = value.strip()
        if value in ('""', "''"):
            value = ""
        try:
            option = self._option(section, key)
        except ValueError as e:
            _refuse(event, 404, str(e), "key")
            event.addresponse(str(e))
            return
        secret = self._is_secret(section, key, option)

        def hidden(text: str) -> str:
            return redact(text, value) if secret else text

        if any(unicodedata.category(char) in _UNWRITABLE for char in value):
            _refuse(event, 400, "a value cannot hold line breaks or control characters", "value")
            event.addresponse(
                "I can't set %s.%s: a value cannot hold line breaks or control characters",
                (section, key),
            )
            return
        try:
            option.parse(value)
        except ValueError as e:
            _refuse(event, 400, hidden(str(e)), "value")
            event.addresponse("I can't set %s.%s: %s", (section, key, hidden(str(e))))
            return
        local = self.local_file()
        old = local.read_text(encoding="utf-8") if local.exists() else None
        text = set_ini_value(old or "", section, key, escape_env(value))
        local.write_text(text, encoding="utf-8")
        problems = self._on_reactor(self.bot.reload_config)
        config_errors = [p for p in problems if "not loaded" not in p]
        if config_errors:
            if old is None:
                local.unlink()
            else:
                local.write_text(old, encoding="utf-8")
            self._on_reactor(self.bot.reload_config)
            _refuse(event, 409, "the config would not load: " + hidden("; ".join(config_errors)))
            event.addresponse(
                "I put it back: the config would not load: %s", hidden("; ".join(config_errors))
            )
            return
        shown = self._shown(section, key, option, option.parse(value)) if secret else value
        if shown is None:
            shown = "(secret)"
        elif shown == "":
            shown = '"" (empty)'
        event.extra[CONFIG_RESULT] = {**self.describe(section, key, option), "file": local.name}
        event.addresponse("Set %s.%s to %s in %s", (section, key, shown, local.name))

    def local_file(self) -> Path:
        """The local override file changes are written to (never the main config)."""
        config = self.bot.config
        return config.local if config.local is not None else default_local_path(config.path)


class Admin(ControlProcessor):
    """Plugins, sources, configuration and shutdown, from chat. Each command needs its
    permission: ``plugins``, ``sources``, ``config`` or ``admin``. Where a plugin and a
    source could share a name, say ``plugin NAME`` or ``source NAME``."""

    usage = (
        "list plugins\n"
        "load|unload|reload [plugin] <plugin>\n"
        "list sources\n"
        "load|unload|reload|connect|disconnect [source] <source>\n"
        "reread config\n"
        "get config <section>.<key>\n"
        "set config <section>.<key> to <value>\n"
        "die | shutdown"
    )
    features = ("admin",)
    priority = Priority.EARLY

    # -- plugins ----------------------------------------------------------------------

    @example("list plugins", r"^Loaded plugins: .*\badmin\b")
    @match(r"^list\s+plugins$", version="deaddressed", simple=False)
    @authorise(fallthrough=False, permission="plugins")
    def list_plugins(self, event: Event) -> None:
        def describe() -> tuple[list[str], dict[str, str]]:
            plugins = self.bot.plugins
            names = []
            for name in plugins.loaded:
                _, count = plugins.versions.get(name, (0, 1))
                names.append(name if count <= 1 else f"{name} (reloaded {count - 1}x)")
            return names, dict(plugins.failed)

        names, failed = self._on_reactor(describe)
        text = "Loaded plugins: " + (", ".join(names) or "none")
        if failed:
            text += ". Failed: " + "; ".join(f"{n} ({why})" for n, why in failed.items())
        event.addresponse(text)

    @match(
        r"^(?P<verb>load|unload|reload|connect|disconnect)\s+"
        r"(?:(?P<kind>plugin|source)\s+)?(?P<name>[\w-]+)$",
        version="deaddressed",
        simple=False,
    )
    def lifecycle(self, event: Event, verb: str, kind: str | None, name: str) -> None:
        if name == "config" and verb == "reload" and kind is None:
            self.reread_config(event)
            return
        if kind is None:
            kind = self._kind_of(name, verb)
        permission = "plugins" if kind == "plugin" else "sources"
        if not self.authorised(event, permission):
            event.complain = "notauthed"
            event.processed = True
            return
        event.processed = True
        if kind == "plugin" and verb in ("connect", "disconnect"):
            event.addresponse("Plugins cannot be connected or disconnected; sources can")
            return
        try:
            if kind == "plugin":
                self._plugin(event, verb, name)
            else:
                self._source(event, verb, name)
        except (PluginLoadError, PluginNotLoaded, PluginNotFound) as e:
            event.addresponse("I couldn't %s %s: %s", (verb, name, _plain(e)))
        except ConfigErrors as e:
            errors = "; ".join(str(error) for error in e.errors)
            event.addresponse("I couldn't %s %s: the config has errors: %s", (verb, name, errors))

    def _kind_of(self, name: str, verb: str) -> str:
        if verb in ("connect", "disconnect"):
            return "source"
        is_source = name in self._on_reactor(self.bot.source_states)
        return "source" if is_source else "plugin"

    def _plugin(self, event: Event, verb: str, name: str) -> None:
        plugins = self.bot.plugins
        if verb == "load":
            processors = self._on_reactor(plugins.load_plugin, name)
            event.addresponse("Loaded plugin %s (%d processors)", (name, len(processors)))
        elif verb == "unload":
            if name == self.name:
                event.addresponse("I won't unload %s: I need it to take it back", name)
                return
            self._on_reactor(plugins.unload_plugin, name)
            event.addresponse("Unloaded plugin %s", name)
        else:
            self._on_reactor(plugins.reload_plugin, name)
            event.addresponse("Reloaded plugin %s", name)

    # -- sources ----------------------------------------------------------------------

    @example("list sources", r"\btest\b")
    @match(r"^list\s+sources$", version="deaddressed", simple=False)
    @authorise(fallthrough=False, permission="sources")
    def list_sources(self, event: Event) -> None:
        states = self._on_reactor(self.bot.source_states)
        text = ", ".join(f"{name} ({state})" for name, state in sorted(states.items()))
        event.addresponse("Sources: %s", text or "none")

    def _source(self, event: Event, verb: str, name: str) -> None:
        bot = self.bot
        if verb in ("unload", "disconnect") and name == event.source:
            event.addresponse("Done (you are talking to me through %s: goodbye)", name)
        actions = {
            "load": bot.load_source,
            "unload": bot.unload_source,
            "reload": bot.reload_source,
            "connect": bot.connect_source,
            "disconnect": bot.disconnect_source,
        }
        self._on_reactor(actions[verb], name)
        if verb in ("unload", "disconnect") and name == event.source:
            return
        state = self._on_reactor(bot.source_states).get(name, "not loaded")
        done = {
            "load": "Loaded",
            "unload": "Unloaded",
            "reload": "Reloaded",
            "connect": "Connected",
            "disconnect": "Disconnected",
        }[verb]
        event.addresponse("%s source %s (now %s)", (done, name, state))

    # -- configuration ----------------------------------------------------------------

    @match(r"^(?:reread|reload)\s+(?:the\s+)?config(?:uration)?$", version="deaddressed",
           simple=False)  # fmt: skip
    @authorise(fallthrough=False, permission="config")
    def reread_config(self, event: Event) -> None:
        problems = self._on_reactor(self.bot.reload_config)
        event.processed = True
        if not problems:
            event.addresponse("Configuration reloaded")
        else:
            count = len(problems)
            plural = "" if count == 1 else "s"
            event.addresponse(
                f"Configuration not (fully) applied, {count} problem{plural}: "
                + "; ".join(problems)
            )

    @match(r"^get\s+config\s+(?P<path>\S+)$", version="deaddressed", simple=False)
    @authorise(fallthrough=False, permission="config")
    def get_config(self, event: Event, path: str) -> None:
        found = split_option_path(path)
        if found is None:
            _refuse(event, 400, _SAY_SECTION_KEY, "key")
            event.addresponse(_SAY_SECTION_KEY)
            return
        section, key = found
        try:
            option = self._option(section, key)
        except ValueError as e:
            _refuse(event, 404, str(e), "key")
            event.addresponse(str(e))
            return
        event.extra[CONFIG_RESULT] = self.describe(section, key, option)
        value = self.bot.config.section(section).get(key, option.default)
        shown = self._shown(section, key, option, value)
        if shown is None:
            event.addresponse("%s.%s is set (secret: not shown)", (section, key))
            return
        event.addresponse("%s.%s = %s", (section, key, shown or "(empty)"))

    @match(r"^set\s+config\s+(?P<path>\S+)\s+to\s+(?P<value>.*)$", version="deaddressed",
           simple=False)  # fmt: skip
    @authorise(fallthrough=False, permission="config")
    def set_config(self, event: Event, path: str, value: str) -> None:
        self.set_value(event, path, value)

    # -- the bot ----------------------------------------------------------------------

    @match(r"^(?:die|shutdown|shut\s+down)$", version="deaddressed", simple=False)
    @authorise(fallthrough=False, permission="admin")
    def die(self, event: Event) -> None:
        event.addresponse("Shutting down")
        # Stopping the reactor stops the bot's services, which first let the events in
        # flight (this one too) finish and send their replies.
        self.bot.stop()


class SecretConfig(ControlProcessor):
    """Carries out ``set config <section>.<key> to <value>`` for an option that holds a
    secret (a password, a database URL): the core's Secrets processor took the value out
    of the message before any other processor, log line or table saw it, and left it
    here only for a private message."""

    usage = "set config <section>.<key> to <secret value> (in private)"
    features = ("admin",)
    priority = Priority.EARLY
    addressed = False
    processed = True  # the core's Secrets marked it processed
    event_types = EventType.TEXT

    @handler
    def handle_secret(self, event: Event) -> None:
        found: Secret | None = event.extra.pop(TAKEN_CONFIG_SECRET, None)
        if found is None:
            return
        if not self.authorised(event, "config"):
            event.complain = "notauthed"
            return
        self.set_value(event, str(found.arguments.get("option") or ""), found.secret)


def _refuse(event: Event, status: int, message: str, field: str | None = None) -> None:
    event.extra[CONFIG_ERROR] = {"status": status, "message": message, "field": field}


def _json_value(option: Option, value: Any) -> Any:
    """``value`` as JSON holds it: booleans, numbers, strings, lists and mappings as they
    are; anything else as the INI file would write it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return option.format(value)


def _format(option: Option, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(empty)"
    if isinstance(value, dict):
        return "; ".join(f"{k} = {v}" for k, v in value.items()) or "(empty)"
    text = option.format(value)
    return text if text != "" else "(empty)"


def _plain(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
