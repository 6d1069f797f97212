"""`PluginTestCase`: a real bot, run inline, to test plugins as a conversation."""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.bot import Bot
from botcore.event import Event, EventType, Lifecycle, Message, Response, Sender
from botcore.options import options_of
from botcore.processor import Processor
from botcore.settings import read_config
from botcore.testing.databases import SQLITE, fresh_database
from botcore.testing.sources import MemorySource
from botcore.testing.threads import InlineReactor, InlineThreadPool


def _ini_value(value: Any) -> str:
    """A Python value as INI text: yes/no for booleans, one line per item for sequences."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    if isinstance(value, Iterable):
        return "\n".join(str(item) for item in value)
    return str(value)


class PluginTestCase(SynchronousTestCase):
    """A real bot, run inline, to test plugins as a conversation::

        class PingTests(PluginTestCase):
            load = ["basic"]

            def test_ping(self):
                self.assertResponseMatches("ping", "^pong$")

    Each test gets a `Bot` built from a validated configuration (``plugin_config``), a
    fresh SQLite database in its temporary folder, an `InlineReactor` clock (``self.clock``,
    moved with `advance`), an `InlineThreadPool`, and a `MemorySource` called ``test``
    (``self.source``) whose nick is the bot's name. Events are dispatched through the real
    dispatcher and chain and are done when the call returns.

    Class attributes:

    * ``load``: the plugins to load; the ``core`` plugin is loaded too unless
      ``load_core = False``. ``plugin.Processor`` entries load processors that are not
      autoloaded.
    * ``plugin_config``: INI sections as ``{"plugin:NAME": {"key": "raw value"}, "bot":
      {...}}``; values are the text you would write in the file (booleans, numbers and
      lists are converted). ``"source:test"`` sets the test source's ``permissions``.
    * ``public``: events are said in channel ``channel`` (``#test``) by default, where they
      are addressed only when they start (or end) with the bot's name, as on a real
      network; otherwise they are private, and always addressed.
    * ``rate_limit``: the core RateLimit is off unless this is True or ``plugin_config``
      sets ``limit_time``, so tests may say many things quickly.
    * ``extra_processors``: processor classes defined in the test module, loaded as plugin
      ``testing`` beside the configured ones (their options keep their defaults).
    * ``source_supports``, ``source_truncation``: what the test source can carry.
    * ``backend``: ``"sqlite"`` (the default), ``"postgresql"`` or ``"mysql"``: the bot's
      database is a fresh one on that server (see `fresh_database`), migrated at startup;
      `backend_variants` makes the PostgreSQL and MariaDB copies of a test class.

    Replies are those the source was asked to send, after the post-processors: in public,
    addressed replies start with ``user: ``.
    """

    load: ClassVar[Sequence[str]] = ("basic",)
    load_core: ClassVar[bool] = True
    plugin_config: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    public: ClassVar[bool] = False
    rate_limit: ClassVar[bool] = False
    extra_processors: ClassVar[Sequence[type[Processor]]] = ()
    username: ClassVar[str] = "user"
    channel: ClassVar[str] = "#test"
    source_name: ClassVar[str] = "test"
    source_supports: ClassVar[Iterable[str]] = MemorySource.supports
    source_truncation: ClassVar[int | None] = None
    backend: ClassVar[str] = SQLITE
    #: Whether the class gets ``test_examples``: every `botcore.processor.example` of the
    #: loaded plugins' handlers, said in private, must draw a matching reply.
    run_examples: ClassVar[bool] = True

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.run_examples and "test_examples" not in vars(cls):
            cls.test_examples = _test_examples  # type: ignore[attr-defined]

    bot: Bot
    clock: InlineReactor
    threadpool: InlineThreadPool
    source: MemorySource

    # -- fixtures -----------------------------------------------------------------

    def setUp(self) -> None:
        super().setUp()
        self.directory = Path(self.mktemp())
        self.directory.mkdir(parents=True)
        self.config = read_config(self.write_config())
        self.clock = InlineReactor()
        self.threadpool = InlineThreadPool()
        self._start_bot()
        # Trial runs cleanups before tearDown: this one runs before the test database's
        # (registered earlier) is dropped, so what the plugins write at stop gets written.
        self.addCleanup(self._stop_bot)
        self.replies: list[Response] = []

    def restart(self) -> None:
        """Stop the bot and start a new one on the same configuration file, database and
        clock, as after a restart of the process: ``self.bot`` and ``self.source`` are the
        new ones (sources added by the test are gone)."""
        self._stop_bot()
        self.config = read_config(self.directory / "bot.ini")
        self._start_bot()

    def _start_bot(self) -> None:
        """Build and start the test bot of ``self.config``, with its test source and the
        extra processors; fail the test if it or a plugin did not start."""
        self.bot = Bot(self.config, reactor=self.clock, threadpool=self.threadpool)
        self._configure_test_source()
        self.source = MemorySource(
            self.source_name,
            self.bot.context,
            dict(self.config.section(f"source:{self.source_name}")),
            supports=self.source_supports,
            truncation=self.source_truncation,
        )
        self.source.setServiceParent(self.bot.sources)
        if self.extra_processors:
            # Each gets the bot a loaded plugin's processor would (see Reloader.processors).
            extra = [
                cls("testing", self.bot if cls.control else self.bot.context, {})
                for cls in self.extra_processors
            ]
            for processor in extra:
                processor.setup()
            self.bot.plugins.loaded["testing"] = extra
        critical: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") == LogLevel.critical:
                critical.append(formatEvent(event))

        observer = cast(ILogObserver, observe)  # a plain callable is one (Twisted says so)
        globalLogPublisher.addObserver(observer)
        try:
            self.successResultOf(self.bot.startService())
        finally:
            globalLogPublisher.removeObserver(observer)
        problems = [f"plugin {name}: {why}" for name, why in self.bot.plugins.failed.items()]
        if self.bot.state != Lifecycle.RUNNING:
            problems[:0] = critical[:1] or [f"the bot is {self.bot.state}, not running"]
        if problems:
            self._stop_bot()
            self.flushLoggedErrors()
            self.fail("the test bot did not start: " + "; ".join(problems))

    def tearDown(self) -> None:
        self._stop_bot()
        super().tearDown()

    def _stop_bot(self) -> None:
        if self.bot.running:
            self.successResultOf(self.bot.stopService())
        # Leave the clock as clean as the bot: nothing may fire after the test.
        for call in self.clock.getDelayedCalls():
            if call.active():
                call.cancel()

    def plugins(self) -> list[str]:
        """The plugins the test bot loads."""
        names = ["core"] if self.load_core else []
        names += [name for name in self.load if name not in names]
        extra = self.plugin_config.get("bot", {}).get("load")
        if extra:
            names += [n for n in re.split(r"[,\s]+", _ini_value(extra)) if n and n not in names]
        return names

    def write_config(self) -> Path:
        """Write the test bot's INI file into the test's folder and return its path."""
        sections: dict[str, dict[str, str]] = {
            name: {key: _ini_value(value) for key, value in values.items()}
            for name, values in self.plugin_config.items()
            if name != f"source:{self.source_name}"
        }
        bot = sections.setdefault("bot", {})
        bot["autoload"] = "no"
        bot["load"] = "\n".join(self.plugins())
        if self.backend == SQLITE:
            url = f"sqlite:///{self.directory.absolute() / 'bot.sqlite'}"
            sections.setdefault("database:main", {"url": url})
        elif "database:main" not in sections:
            # A new server database is not set up at startup unless told to.
            url = fresh_database(self, self.backend)
            sections["database:main"] = {"url": url, "auto_upgrade": "yes"}
        if self.load_core and not self.rate_limit:
            core = sections.setdefault("plugin:core", {})
            core.setdefault("limit_time", "0")
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case
        parser.read_dict(sections)
        path = self.directory / "bot.ini"
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        return path

    def _configure_test_source(self) -> None:
        # The test source is not built from config (it is no sources/ module), so its
        # section is parsed here and put where Permissions looks for it.
        raw = self.plugin_config.get(f"source:{self.source_name}", {})
        options = options_of(MemorySource)
        values: dict[str, Any] = {name: option.default for name, option in options.items()}
        for key, value in raw.items():
            if key not in options:
                known = ", ".join(sorted(options))
                raise ValueError(f"[source:{self.source_name}] {key}: unknown key ({known})")
            values[key] = options[key].parse(_ini_value(value))
        self.config.sections[f"source:{self.source_name}"] = values

    # -- talking to the bot -----------------------------------------------------------

    def make_event(
        self,
        text: str | None,
        public: bool | None = None,
        sender: str | Sender | None = None,
        channel: str | None = None,
        addressed: bool | str | None = None,
        **fields: Any,
    ) -> Event:
        """An event as the test source would make it: ``text`` said by ``sender`` (default
        ``user``) in ``channel`` (public) or privately. Private events are addressed;
        public ones are left for the Addressed processor unless ``addressed`` is given.
        Other keyword arguments set `Event` fields (``type``, ``authenticated``, ...)."""
        public = self.public if public is None else public
        if not isinstance(sender, Sender):
            nick = sender or self.username
            sender = Sender(f"{self.source_name}:{nick}", nick, nick)
        if channel is None:
            channel = self.channel if public else sender.nick
        if addressed is None:
            addressed = not public
        fields.setdefault("type", EventType.MESSAGE)
        fields.setdefault("time", datetime.fromtimestamp(self.clock.seconds(), UTC))
        return Event(
            source=self.source_name,
            sender=sender,
            channel=channel,
            public=public,
            addressed=addressed,
            message=Message(text) if text is not None else None,
            **fields,
        )

    def say(self, text: str | Event, **kw: Any) -> Event:
        """Dispatch ``text`` (or a ready event) and return the processed event; the replies
        sent meanwhile are in ``self.replies``."""
        event = text if isinstance(text, Event) else self.make_event(text, **kw)
        start = len(self.source.sent)
        event = self.successResultOf(self.source.dispatch(event))
        self.replies = self.source.sent[start:]
        return event

    def responses(self, text: str | Event, **kw: Any) -> list[str]:
        """The texts of the replies to ``text``, in the order they were sent."""
        self.say(text, **kw)
        return [str(reply.text) for reply in self.replies]

    def advance(self, seconds: float) -> list[str]:
        """Move the clock on; return the texts of replies sent meanwhile (delayed calls,
        periodic tasks)."""
        start = len(self.source.sent)
        self.clock.advance(seconds)
        self.replies = self.source.sent[start:]
        return [str(reply.text) for reply in self.replies]

    def link_account(self, username: str, *identities: tuple[str, str]) -> int:
        """Create account ``username`` with these ``(source, identity)`` pairs linked to
        it, committed; returns the account's id (for plugins that follow a person)."""
        from botcore.accounts import models as accounts

        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None  # the bot has started
        session = sessions()
        try:
            account = accounts.create_account(session, username)
            session.flush()
            for source, name in identities:
                accounts.link(session, accounts.identify(session, source, name), account)
            session.commit()
            return account.id
        finally:
            session.close()

    def processor(self, name: str | type[Processor]) -> Processor:
        """The loaded processor of that class (or class name)."""
        for processor in self.bot.dispatcher.chain:
            if processor.__class__ is name or processor.__class__.__name__ == name:
                return processor
        raise LookupError(f"no processor {name!r} is loaded")

    # -- assertions ---------------------------------------------------------------------

    def restart_for_examples(self) -> None:
        """Restart the bot as the examples expect it: this class's plugins, ``[bot]``,
        ``[auth]`` and plugin sections, but the core's defaults (no rate limit, default
        formatting) and a test source that carries everything in private (the class may
        set other limits to test them)."""
        sections = {
            name: values for name, values in self.plugin_config.items() if name != "plugin:core"
        }
        # The same database (a server backend's would otherwise be a new one).
        written = configparser.ConfigParser(interpolation=None)
        written.read(self.directory / "bot.ini", encoding="utf-8")
        if written.has_section("database:main"):
            sections["database:main"] = dict(written.items("database:main"))
        defaults: dict[str, Any] = {
            "plugin_config": sections,
            "rate_limit": False,
            "public": False,
            "source_supports": MemorySource.supports,
            "source_truncation": None,
        }
        # Instance attributes shadow the class's settings for this test only.
        for name, value in defaults.items():
            setattr(self, name, value)
        self._stop_bot()
        self.config = read_config(self.write_config())
        self._start_bot()

    def _example_sender(self) -> str:
        """Who says the examples: ``examples``, with an account holding every permission
        the loaded processors check (examples show what a command does when allowed)."""
        from botcore.accounts import models as accounts

        nick = "examples"
        wanted = sorted(
            {
                permission
                for processors in self.bot.plugins.loaded.values()
                for processor in processors
                for permission in type(processor).declared_permissions()
            }
        )
        if not wanted:
            return nick
        account = self.link_account(nick, (self.source_name, nick))
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        session = sessions()
        try:
            for permission in wanted:
                accounts.set_permission(session, account, permission, "yes")
            session.commit()
        finally:
            session.close()
        return nick

    def assertExamples(self) -> None:
        """Fail unless every `example` of every loaded plugin's handlers, said in private
        (so addressed) in the order they are declared by a user holding the permissions
        they check, draws a reply it matches."""
        failures = []
        sender = self._example_sender()
        for plugin, processors in sorted(self.bot.plugins.loaded.items()):
            for processor in processors:
                for example in type(processor).examples():
                    replies = self.responses(example.said, public=False, sender=sender)
                    candidates = [*replies, "\n".join(replies)] if len(replies) > 1 else replies
                    if not any(example.reply.search(reply) for reply in candidates):
                        failures.append(
                            f"plugin {plugin} ({type(processor).__name__}): "
                            f"{example.said!r} got {replies!r}, none matching "
                            f"{example.reply.pattern!r}"
                        )
        if failures:
            self.fail("examples that do not hold:\n" + "\n".join(failures))

    def assertResponseMatches(
        self, text: str | Event, regex: str | re.Pattern[str], flags: int = 0, **kw: Any
    ) -> re.Match[str]:
        """Fail unless a reply to ``text`` (or all replies joined by new lines) matches
        ``regex`` (`re.search`; ``flags`` such as ``re.I`` apply). Returns the match."""
        replies = self.responses(text, **kw)
        pattern = re.compile(regex, flags) if isinstance(regex, str) else regex
        candidates = list(replies)
        if len(replies) > 1:
            candidates.append("\n".join(replies))
        for candidate in candidates:
            found = pattern.search(candidate)
            if found is not None:
                return found
        self.fail(f"{_said(text)} got {replies!r}, none matching {pattern.pattern!r}")

    def assertNoResponse(self, text: str | Event, **kw: Any) -> Event:
        """Fail if the bot replies to ``text``."""
        event = self.say(text, **kw)
        if self.replies:
            texts = [str(reply.text) for reply in self.replies]
            self.fail(f"{_said(text)} expected no reply, got {texts!r}")
        return event

    def assertSucceeds(self, text: str | Event, **kw: Any) -> Event:
        """Fail unless a processor handled ``text`` and nothing complained about it."""
        event = self.say(text, **kw)
        if not event.processed or event.complain is not None:
            texts = [str(reply.text) for reply in self.replies]
            self.fail(
                f"{_said(text)} expected to succeed, but processed={event.processed}, "
                f"complaint={event.complain!r}, replies={texts!r}"
            )
        return event

    def assertFails(self, text: str | Event, **kw: Any) -> Event:
        """Fail unless ``text`` drew a complaint or no processor handled it."""
        event = self.say(text, **kw)
        if event.processed and event.complain is None:
            texts = [str(reply.text) for reply in self.replies]
            self.fail(f"{_said(text)} expected to fail, but it succeeded with {texts!r}")
        return event


def _test_examples(self: PluginTestCase) -> None:
    """Every example of the loaded plugins' handlers draws a reply it matches."""
    self.restart_for_examples()
    self.assertExamples()


def _said(text: str | Event) -> str:
    if isinstance(text, Event):
        return f"event {text.message.raw if text.message else text.type!r}"
    return repr(text)
