"""The IRC source's IRCv3 against a real InspIRCd 3 with Atheme services (one network for
the module, `tests.sources.ircv3_harness`): a second client sees the bot reply with a
reply tag and react; the bot learns its own messages' ids from echo-message and
labeled-response; edits and deletions (which InspIRCd 3 cannot carry) degrade;
server-time, account-tag and account-notify feed the event; SASL PLAIN and EXTERNAL log
in; STS moves the bot to the TLS port and keeps it there; a bad certificate is a clear
error."""

from __future__ import annotations

import configparser
import re
import shutil
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from botcore.bot import Bot
from botcore.event import Event, EventType
from botcore.processor import Processor, handler, match
from botcore.settings import read_config
from tests.ircserver import LineClient, connect_client
from tests.sources import ircv3_harness
from tests.sources.ircv3_harness import SharedNetwork
from tests.sources.test_irc_integration import wait_until

CHANNEL = "#v3"
WAIT = 20.0


class V3Commands(Processor):
    """Test commands that use the message model: react, edit and delete own replies."""

    @match("react")
    def react(self, event: Event) -> None:
        event.react("👍")

    @match("edit")
    def edit(self, event: Event) -> None:
        first = event.addresponse("first version", address=False)
        event.edit(first.id, "second version")

    @match("delete")
    def delete(self, event: Event) -> None:
        doomed = event.addresponse("about to go", address=False)
        event.delete(doomed.id)

    @match("who am i")
    def whoami(self, event: Event) -> None:
        event.addresponse(f"you are {event.who.id}", address=False)


class Recorder(Processor):
    """Keeps every message, reaction and state event that reaches the chain."""

    event_types = (EventType.MESSAGE, EventType.REACTION, EventType.STATE)
    addressed = False
    processed = True
    seen: ClassVar[list[Event]] = []

    @handler
    def record(self, event: Event) -> None:
        Recorder.seen.append(event)


def tags_of(line: str) -> dict[str, str]:
    """The tags of a raw received line (values unescaped as far as these tests need)."""
    if not line.startswith("@"):
        return {}
    found = {}
    for item in line[1:].split(" ", 1)[0].split(";"):
        key, _, value = item.partition("=")
        found[key] = value.replace("\\s", " ").replace("\\:", ";")
    return found


class InspIRCdTests(SharedNetwork, TestCase):
    skip = ircv3_harness.skip_reason()
    timeout = 4 * WAIT

    def setUp(self) -> None:
        self.use_network()
        self.clients: list[LineClient] = []
        self.bots: list[Bot] = []
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        Recorder.seen = []

    def tearDown(self) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._teardown())

    async def _teardown(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                client.transport.loseConnection()
        for bot in self.bots:
            if bot.running:
                await bot.stopService()

    def log_text(self) -> str:
        return "\n".join(
            str(e.get("log_format", "")) + " " + " ".join(map(str, e.values()))
            for e in self.logged
        )

    async def start_bot(
        self,
        nick: str,
        *,
        wait: str | None = "joined",
        directory: Path | None = None,
        **options: str,
    ) -> Bot:
        """A bot called ``nick`` on the network (plain port unless ``servers`` says),
        waited for until it has joined CHANNEL (``wait="joined"``), registered
        (``"connected"``) or not at all (None)."""
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="botcore-ircv3-bot-"))
            self.addCleanup(shutil.rmtree, directory, True)
        source = {
            "type": "irc",
            "servers": f"tcp:{self.network.hostname}:{self.network.port}",
            "nick": nick,
            "channels": CHANNEL,
            "reconnect_delay": "0.05",
            "reconnect_max_delay": "0.5",
            "flood_rate": "0",
            "connect_timeout": str(WAIT),
            # The plain port says STS: every bot ends up on the TLS port.
            "tls_ca_file": self.network.ca_file,
            **options,
        }
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(
            {
                "bot": {"name": nick, "autoload": "no", "load": "core, basic"},
                "database:main": {"url": f"sqlite:///{directory / 'bot.sqlite'}"},
                "plugin:core": {"limit_time": "0"},
                "source:irc": source,
            }
        )
        path = directory / "bot.ini"
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        bot = Bot(read_config(path, environ={}))
        bot.plugins.loaded["testing"] = [V3Commands("testing", bot, {}), Recorder("rec", bot, {})]
        self.bots.append(bot)
        await bot.startService()
        source = bot.get_source("irc")
        if wait == "joined":
            await wait_until(
                lambda: (
                    source.protocol is not None
                    and source.protocol.registered
                    and "#v3" in source.protocol.channels
                ),
                f"{nick} to join {CHANNEL}",
                WAIT,
            )
        elif wait == "connected":
            await wait_until(lambda: source.state == "connected", f"{nick} to connect", WAIT)
        return bot

    async def client(self, nick: str, caps: str = "message-tags server-time") -> LineClient:
        """A raw client in CHANNEL with ``caps`` (asked for after registration)."""
        client = await connect_client(self.network, nick)  # type: ignore[arg-type]
        self.clients.append(client)
        start = len(client.lines)
        client.send(f"CAP REQ :{caps}")
        await client.wait_for(" ACK ", since=start, timeout=WAIT)
        client.send(f"JOIN {CHANNEL}")
        await client.wait_for(" 366 ", since=start, timeout=WAIT)
        return client

    # -- message ids, replies, reactions, echo -------------------------------------------------

    async def test_reply_react_and_own_ids(self) -> None:
        """A second client sees the bot's answer tagged as a reply to the message that
        asked, and its reaction on that message; the bot knows its answer's msgid from
        the echo, and its event had the sender's message id and server time."""
        bot = await self.start_bot("tagbot")
        source = bot.get_source("irc")
        self.assertIn("echo-message", source.protocol.caps)
        self.assertIn("labeled-response", source.protocol.caps)
        self.assertTrue({"reply", "react"} <= source.supports)
        alice = await self.client("alice1")
        bob = await self.client("bob1")
        start = len(bob.lines)
        alice.send(f"PRIVMSG {CHANNEL} :tagbot: echo tagged hello")
        asked = await bob.wait_for("PRIVMSG #v3 :tagbot: echo tagged", since=start, timeout=WAIT)
        answer = await bob.wait_for(":tagged hello", since=start, timeout=WAIT)
        asked_tags, answer_tags = tags_of(asked), tags_of(answer)
        self.assertTrue(asked_tags.get("msgid"))
        self.assertEqual(answer_tags.get("+draft/reply"), asked_tags["msgid"])
        self.assertTrue(answer.split(" ", 1)[1].startswith(":tagbot!"))
        # The bot learnt the network's id of its answer from the echo.
        await wait_until(lambda: source.sent_messages(CHANNEL), "the echo", WAIT)
        sent = source.sent_messages(CHANNEL)[-1]
        self.assertEqual(sent.message_id, answer_tags["msgid"])
        self.assertIn("tagged hello", sent.text)
        # The event: the message's id, and its time from the server's time tag.
        event = next(e for e in Recorder.seen if e.message and "tagged" in e.message.raw)
        self.assertEqual(event.message_id, asked_tags["msgid"])
        stamp = datetime.fromisoformat(asked_tags["time"].replace("Z", "+00:00"))
        self.assertEqual(event.time, stamp)
        # Its own messages never come back to it as someone else's.
        self.assertFalse([e for e in Recorder.seen if e.sender and e.sender.nick == "tagbot"])

        start = len(bob.lines)
        alice.send(f"PRIVMSG {CHANNEL} :tagbot: react")
        asked = await bob.wait_for("PRIVMSG #v3 :tagbot: react", since=start, timeout=WAIT)
        reaction = await bob.wait_for(" TAGMSG ", since=start, timeout=WAIT)
        self.assertEqual(tags_of(reaction).get("+draft/react"), "👍")
        self.assertEqual(tags_of(reaction).get("+draft/reply"), tags_of(asked)["msgid"])

    async def test_reaction_from_a_client_is_an_event(self) -> None:
        """A client's TAGMSG with +draft/react on a message is a reaction event."""
        await self.start_bot("reactbot")
        alice = await self.client("alice2")
        start = len(alice.lines)
        alice.send("CAP REQ :echo-message")
        await alice.wait_for(" ACK ", since=start, timeout=WAIT)
        alice.send(f"PRIVMSG {CHANNEL} :something to like")
        own = await alice.wait_for(":something to like", since=start, timeout=WAIT)
        msgid = tags_of(own)["msgid"]
        alice.send(f"@+draft/react=🎉;+draft/reply={msgid} TAGMSG {CHANNEL}")
        await wait_until(
            lambda: any(e.type == EventType.REACTION for e in Recorder.seen), "the reaction", WAIT
        )
        reaction = next(e for e in Recorder.seen if e.type == EventType.REACTION)
        self.assertEqual((reaction.reaction, reaction.refers_to), ("🎉", msgid))
        self.assertEqual(reaction.channel, CHANNEL)
        self.assertEqual(reaction.who.nick, "alice2")

    async def test_history_is_not_replayed_as_new(self) -> None:
        """A channel with history (InspIRCd's +H) plays its last messages to whoever joins,
        in a batch: the bot does not take them for new commands."""
        bot = await self.start_bot("histbot")
        source = bot.get_source("irc")
        erin = await self.client("erin5", "message-tags server-time batch")
        start = len(erin.lines)
        erin.send("JOIN #history")
        await erin.wait_for("366 erin5 #history", since=start, timeout=WAIT)
        erin.send("MODE #history +H 10:1d")
        await erin.wait_for("MODE #history +H", since=start, timeout=WAIT)
        erin.send("PRIVMSG #history :histbot: echo from the past")
        source.join("#history")
        await wait_until(lambda: "#history" in source.protocol.channels, "the join", WAIT)
        erin.send("PRIVMSG #history :histbot: echo from now on")
        await erin.wait_for(":from now on", since=start, timeout=WAIT)
        said = [line for line in erin.lines[start:] if ":histbot!" in line and "PRIVMSG" in line]
        self.assertEqual(len(said), 1, said)
        self.assertFalse([e for e in Recorder.seen if e.message and "past" in e.message.raw])

    async def test_edit_and_delete_degrade(self) -> None:
        """InspIRCd 3 has no edits or deletions: an edit is sent again as a new message
        (edit_fallback = resend), a deletion becomes nothing."""
        bot = await self.start_bot("editbot")
        self.assertFalse({"edit", "delete"} & bot.get_source("irc").supports)
        alice = await self.client("alice3")
        start = len(alice.lines)
        alice.send(f"PRIVMSG {CHANNEL} :editbot: edit")
        await alice.wait_for("second version", since=start, timeout=WAIT)
        alice.send(f"PRIVMSG {CHANNEL} :editbot: delete")
        alice.send(f"PRIVMSG {CHANNEL} :editbot: echo marker")
        await alice.wait_for(":marker", since=start, timeout=WAIT)
        said = [
            line.split(f" PRIVMSG {CHANNEL} :", 1)[1]
            for line in alice.lines[start:]
            if ":editbot!" in line
        ]
        self.assertEqual(
            said, ["first version", "alice3: second version", "about to go", "marker"]
        )

    async def test_state_the_network_reports(self) -> None:
        """account-notify and account-tag: a client that logs in to services is known by
        its account, which the network vouches for; away-notify, setname, invite-notify
        and chghost (an operator's CHGHOST) are state events."""
        bot = await self.start_bot("statebot")
        source = bot.get_source("irc")
        carol = await self.client("carol4", "message-tags server-time setname")
        start = len(carol.lines)
        carol.send("PRIVMSG NickServ :REGISTER carolpass4 carol4@example.org")
        await carol.wait_for(re.compile("regist", re.I).search, since=start, timeout=WAIT)
        await self.state("account")
        carol.send(f"PRIVMSG {CHANNEL} :statebot: who am i")
        line = await carol.wait_for(":you are", since=start, timeout=WAIT)
        self.assertIn("you are carol4", line)
        event = next(e for e in Recorder.seen if e.message and "who am i" in e.message.raw)
        self.assertEqual(event.data["account"], "carol4")
        self.assertEqual(source.verified_identity(event), "carol4")

        carol.send("AWAY :out for lunch")
        away = await self.state("away")
        self.assertEqual((away.who.nick, away.data["message"]), ("carol4", "out for lunch"))
        carol.send("SETNAME :Carol the Fourth")
        self.assertEqual((await self.state("setname")).data["realname"], "Carol the Fourth")
        # carol creates a channel (so she is its operator), the bot joins, she invites.
        carol.send("JOIN #carols")
        await carol.wait_for("366 carol4 #carols", since=start, timeout=WAIT)
        source.join("#carols")
        await wait_until(lambda: "#carols" in source.protocol.channels, "the join", WAIT)
        dave = await connect_client(self.network, "dave4")  # type: ignore[arg-type]
        self.clients.append(dave)
        carol.send("INVITE dave4 #carols")
        invite = await self.state("invite")
        self.assertEqual((invite.channel, invite.data["invited"]), ("#carols", "dave4"))
        carol.send(f"OPER {' '.join(ircv3_harness.OPER)}")
        carol.send("CHGHOST carol4 cloaked.example")
        moved = await self.state("chghost")
        self.assertEqual(moved.data["old"], "carol4!carol4@127.0.0.1")
        self.assertEqual(moved.data["mask"], "carol4!carol4@cloaked.example")
        self.assertEqual(moved.who.id, "carol4")

    async def state(self, kind: str) -> Event:
        """The first state event of ``kind`` recorded (waited for)."""
        await wait_until(
            lambda: any(e.data.get("kind") == kind for e in Recorder.seen), f"{kind} event", WAIT
        )
        return next(e for e in Recorder.seen if e.data.get("kind") == kind)

    # -- SASL ------------------------------------------------------------------------------------

    async def test_sasl_plain(self) -> None:
        """SASL PLAIN with an account registered through NickServ."""
        self.network.register_account("plainbot", "plainpass5")
        bot = await self.start_bot(
            "plainbot",
            account_password="plainpass5",
            sasl_mechanisms="PLAIN",
            sasl_required="yes",
        )
        protocol = bot.get_source("irc").protocol
        self.assertEqual((protocol.sasl_mechanism, protocol.account), ("PLAIN", "plainbot"))

    async def test_sasl_external_with_certificate(self) -> None:
        """SASL EXTERNAL over TLS with the client certificate whose fingerprint the
        account registered (NickServ CERT ADD); no password anywhere."""
        self.network.register_account("certbot", "certpass6", add_cert=True)
        bot = await self.start_bot(
            "certbot",
            servers=f"tls:{self.network.hostname}:{self.network.tls_port}",
            tls_ca_file=self.network.ca_file,
            tls_certificate=self.network.client_cert,
            sasl_mechanisms="EXTERNAL",
            sasl_required="yes",
        )
        protocol = bot.get_source("irc").protocol
        self.assertTrue(protocol.secure)
        self.assertEqual((protocol.sasl_mechanism, protocol.account), ("EXTERNAL", "certbot"))

    async def test_sasl_required_refuses_a_failed_login(self) -> None:
        """With sasl_required, a wrong password keeps the bot off the network."""
        self.network.register_account("lockbot", "lockpass7")
        bot = await self.start_bot(
            "lockbot",
            wait=None,
            account_password="wrong-password",
            sasl_mechanisms="PLAIN",
            sasl_required="yes",
        )
        source = bot.get_source("irc")
        await wait_until(lambda: source.failures >= 2, "two refused attempts", WAIT)
        self.assertNotEqual(source.state, "connected")
        self.assertIn("sasl_required is set", self.log_text())

    # -- TLS and STS ---------------------------------------------------------------------------

    async def test_sts_upgrade_and_policy_kept(self) -> None:
        """Given the plain port, the bot follows the server's STS to the TLS port; the
        policy is stored (plugin_data 'irc-sts'), and on the next start the bot goes to
        the TLS port at once, never trying plain text."""
        directory = Path(tempfile.mkdtemp(prefix="botcore-ircv3-sts-"))
        self.addCleanup(shutil.rmtree, directory, True)
        options = {
            "servers": f"tcp:{self.network.hostname}:{self.network.port}",
            "tls_ca_file": self.network.ca_file,
        }
        bot = await self.start_bot("stsbot", directory=directory, **options)
        source = bot.get_source("irc")
        tls = f"tls:{self.network.hostname}:{self.network.tls_port}"
        self.assertTrue(source.protocol.secure)
        self.assertEqual(source.connected_to, tls)
        await wait_until(lambda: self._stored_sts(directory), "the stored policy", WAIT)
        stored = self._stored_sts(directory)
        self.assertEqual(stored["localhost"]["port"], self.network.tls_port)
        self.assertGreater(stored["localhost"]["expires"], reactor.seconds() + 200)
        await bot.stopService()

        again = await self.start_bot("stsbot", directory=directory, **options)
        source = again.get_source("irc")
        self.assertEqual(source.connections, 1)
        self.assertTrue(source.protocol.secure)
        self.assertEqual(source.connected_to, tls)

    def _stored_sts(self, directory: Path) -> Any:
        import json

        connection = sqlite3.connect(directory / "bot.sqlite")
        connection.create_collation(
            "botcore_ci",
            lambda a, b: (a.casefold() > b.casefold()) - (a.casefold() < b.casefold()),
        )
        try:
            row = connection.execute(
                "SELECT value FROM plugin_data WHERE plugin = 'irc' AND key = 'irc-sts'"
            ).fetchone()
        finally:
            connection.close()
        return json.loads(row[0]) if row else None

    async def test_bad_certificate_is_a_clear_error(self) -> None:
        """Without the test CA the server's certificate is refused, and the log says so."""
        bot = await self.start_bot(
            "badcertbot",
            wait=None,
            servers=f"tls:{self.network.hostname}:{self.network.tls_port}",
            tls_ca_file="",
        )
        source = bot.get_source("irc")
        await wait_until(lambda: source.failures >= 1, "the refused handshake", WAIT)
        self.assertNotEqual(source.state, "connected")
        self.assertIn("certificate verify failed", self.log_text())
        self.assertIn("tls_ca_file", self.log_text())
