"""Tests for the memo plugin: leaving memos for nicks and accounts, delivery on the next
message (public, private, flood limit), join notices, reading them back, permissions,
and memos surviving a restart; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event as sa_event
from sqlalchemy import insert
from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Event, EventType, Message, Sender
from botcore.plugins.memo import Memo, Waiting, name_key
from botcore.testing import MemorySource, PluginTestCase, backend_variants


class MemoTestCase(PluginTestCase):
    load = ["memo"]
    public = True

    def tell(self, text: str, sender: str = "alice", **kw):
        """Address ``text`` to the bot in the channel; return the replies."""
        return self.responses(f"botcore: {text}", sender=sender, **kw)

    def other_source(self, name: str = "irc") -> MemorySource:
        """A second source on the bot, as for a bot on two networks."""
        source = MemorySource(name, self.bot.context, {})
        source.setServiceParent(self.bot.sources)
        return source

    def say_on(
        self,
        source: MemorySource,
        text: str,
        nick: str,
        public: bool = True,
        authenticated: bool = False,
    ) -> list:
        """``nick`` says ``text`` on ``source`` (``authenticated`` as their account, or
        not); the replies (with their targets)."""
        event = Event(
            authenticated=authenticated,
            source=source.name,
            type=EventType.MESSAGE,
            sender=Sender(f"{source.name}:{nick}", nick, nick),
            channel="#chan" if public else nick,
            public=public,
            message=Message(text),
            time=datetime.fromtimestamp(self.clock.seconds(), UTC),
        )
        start = len(source.sent)
        self.successResultOf(source.dispatch(event))
        return [(str(reply.target), str(reply.text)) for reply in source.sent[start:]]


class MemoTests(MemoTestCase):
    """Memos between nicks on one source."""

    def test_delivered_on_next_message(self):
        """A memo is said to its recipient, addressed, when they next speak; only once."""
        self.assertEqual(self.tell("tell bob the build is green!"), ["alice: Okay, I'll tell bob"])
        self.assertNoResponse("hello", sender="carol")
        self.advance(7300)
        self.assertEqual(
            self.responses("morning all", sender="BOB"),
            ["BOB: alice said 2 hours ago: the build is green!"],
        )
        self.assertNoResponse("still here", sender="bob")

    def test_private_memo(self):
        """pm/msg memos are delivered privately even when the recipient speaks in public."""
        self.assertEqual(self.tell("pm bob the password is x"), ["alice: Okay, I'll tell bob"])
        self.say("hi", sender="bob")
        self.assertEqual(
            [(r.target, r.text) for r in self.replies],
            [("bob", "alice said just now: the password is x")],
        )

    def test_delivered_in_private(self):
        """Memos reach a recipient who speaks to the bot privately, privately."""
        self.tell("tell bob one")
        self.say("hello", sender="bob", public=False)
        self.assertEqual(
            [(r.target, str(r.text)) for r in self.replies if "one" in str(r.text)],
            [("bob", "alice said just now: one")],
        )

    def test_flood_limit(self):
        """Past public_limit memos, the rest go privately, with a note in the channel."""
        for n in range(5):
            self.tell(f"tell bob memo {n}")
        self.say("back", sender="bob")
        said = [(r.target, str(r.text)) for r in self.replies]
        self.assertEqual(
            said,
            [
                ("#test", "bob: alice said just now: memo 0"),
                ("#test", "bob: alice said just now: memo 1"),
                ("#test", "bob: alice said just now: memo 2"),
                ("bob", "alice said just now: memo 3"),
                ("bob", "alice said just now: memo 4"),
                ("#test", "bob: 2 more memos sent to you privately"),
            ],
        )

    def test_join_notice(self):
        """Joining a channel with memos waiting gets a private notice, once."""
        self.tell("tell bob hello")
        join = self.make_event(None, sender="bob", type=EventType.STATE, data={"kind": "join"})
        self.say(join)
        self.assertEqual(
            [(r.target, str(r.text)) for r in self.replies],
            [("bob", "You have 1 new memo; say 'my messages' to me to see them")],
        )
        again = self.make_event(None, sender="bob", type=EventType.STATE, data={"kind": "join"})
        self.assertNoResponse(again)
        self.assertResponseMatches("hi", "hello", sender="bob")

    def test_my_messages(self):
        """my messages lists one's memos, numbered, without delivering them;
        message <n> shows one."""
        self.tell("tell bob first")
        self.tell("tell bob second", sender="carol")
        self.assertEqual(
            self.responses("my messages", sender="bob", public=False),
            ["1: from alice (new): first; 2: from carol (new): second"],
        )
        self.assertEqual(
            self.responses("message 2", sender="bob", public=False),
            ["carol said just now: second"],
        )
        self.assertResponseMatches("message 9", "no memo 9", sender="bob", public=False)
        # The one not read yet is delivered on the next message.
        self.assertResponseMatches("ok", "alice said just now: first", sender="bob")
        self.assertResponseMatches(
            "botcore: my messages",
            r"^bob: 1: from alice: first; 2: from carol: second$",
            sender="bob",
        )
        self.assertResponseMatches(
            "my messages", "^You have no memos$", sender="dave", public=False
        )

    def test_private_memo_not_listed_in_public(self):
        """A private memo's text is not shown by my messages or message <n> in public."""
        self.tell("pm bob secret")
        self.assertResponseMatches(
            "botcore: my messages", r"1: from alice \(new\), private$", sender="bob"
        )
        self.assertResponseMatches(
            "botcore: message 1", "private: ask me in private", sender="bob"
        )

    def test_refusals(self):
        """Memos to the bot itself, or too long ones, are refused with a reason."""
        self.assertResponseMatches("botcore: tell botcore hi", "can't leave a memo for myself")
        self.assertResponseMatches(f"botcore: tell bob {'x' * 1001}", "too long")
        self.assertNoResponse("hi", sender="bob")

    def test_not_for_the_bot_by_its_nick(self):
        """The bot's nick on the source the memo is for is the bot too (another source's
        nick is somebody else's there)."""
        irc = self.other_source("irc")
        irc.nick = "robo"
        self.assertResponseMatches("botcore: tell robo on irc hi", "can't leave a memo for myself")
        self.assertEqual(self.tell("tell robo hi"), ["alice: Okay, I'll tell robo"])

    def test_tell_me(self):
        """'tell me ...' is not a memo (left for other plugins)."""
        self.assertFails("botcore: tell me a joke")

    def test_not_addressed(self):
        """'tell bob ...' not addressed to the bot leaves no memo."""
        self.assertNoResponse("tell bob hi", sender="alice")
        self.assertNoResponse("hi", sender="bob")

    def test_on_source(self):
        """tell <who> on <source> leaves the memo for that nick on that source only."""
        irc = self.other_source("irc")
        self.assertEqual(
            self.tell("tell bob on irc see you there"), ["alice: Okay, I'll tell bob on irc"]
        )
        self.assertNoResponse("hi", sender="bob")
        self.assertEqual(
            self.say_on(irc, "hi", "bob"), [("#chan", "bob: alice said just now: see you there")]
        )

    def test_on_unknown_word(self):
        """'on' followed by something that is no source is part of the memo."""
        self.tell("tell bob on monday we ship")
        self.assertResponseMatches("hi", "alice said just now: on monday we ship", sender="bob")

    def test_survives_restart(self):
        """Memos are in the database: a new bot on the same database delivers them."""
        self.tell("tell bob remember me")
        self.restart()
        self.assertResponseMatches("hi", "^bob: alice said just now: remember me$", sender="bob")


class AccountMemoTests(MemoTestCase):
    """Memos for accounts reach whichever linked identity speaks first."""

    def test_memo_for_account(self):
        """A memo for an account name is delivered to any of its identities, once they
        are authenticated as it; once."""
        irc = self.other_source("irc")
        self.link_account("robert", ("test", "bob"), ("irc", "rob"))
        self.assertEqual(self.tell("tell robert hello"), ["alice: Okay, I'll tell robert"])
        self.assertEqual(
            self.say_on(irc, "hi", "rob", authenticated=True),
            [("#chan", "rob: alice said just now: hello")],
        )
        self.assertNoResponse("hi", sender="bob", authenticated=True)

    def test_memo_for_linked_nick(self):
        """A memo for a nick whose identity is linked goes to the account: another of
        the person's identities may get it, authenticated."""
        irc = self.other_source("irc")
        self.link_account("robert", ("test", "bob"), ("irc", "rob"))
        self.tell("tell bob hello")
        self.assertEqual(
            self.say_on(irc, "hi", "rob", public=False, authenticated=True),
            [("rob", "alice said just now: hello")],
        )

    def test_linked_nick_is_not_the_account(self):
        """Someone merely using a nick linked to an account (not authenticated as it)
        gets none of the account's memos, is not told of them and cannot list them; the
        account's owner, authenticated, still gets them all."""
        irc = self.other_source("irc")
        self.link_account("robert", ("test", "bob"), ("irc", "rob"))
        self.tell("tell robert hello")
        self.tell("pm bob secret")
        self.assertEqual(self.say_on(irc, "hi", "rob"), [])
        self.assertResponseMatches(
            "botcore: my messages", "^bob: You have no memos$", sender="bob"
        )
        self.assertNoResponse("hi", sender="bob")
        replies = self.say_on(irc, "hi", "rob", public=False, authenticated=True)
        self.assertEqual(
            replies,
            [("rob", "alice said just now: hello"), ("rob", "alice said just now: secret")],
        )


class PermissionTests(MemoTestCase):
    """With sendmemo_required/recvmemo_required, the permissions are needed."""

    plugin_config = {
        "plugin:memo": {"sendmemo_required": "yes", "recvmemo_required": "yes"},
        "auth": {"grants": {"test:alice": "+sendmemo", "test:bob": "+recvmemo"}},
    }

    def test_sendmemo(self):
        """Without sendmemo, tell is refused and no memo is left."""
        event = self.assertFails("botcore: tell bob hi", sender="carol")
        self.assertEqual(event.complain, "notauthed")
        self.assertNoResponse("hi", sender="bob")
        self.assertEqual(self.tell("tell bob hi"), ["alice: Okay, I'll tell bob"])
        self.assertResponseMatches("hi", "alice said just now: hi", sender="bob")

    def test_recvmemo(self):
        """Without recvmemo, memos wait undelivered and cannot be listed."""
        self.tell("tell carol hi")
        self.assertNoResponse("hi", sender="carol")
        self.assertFails("my messages", sender="carol", public=False)


class CapTests(MemoTestCase):
    """A sender, and a recipient, have only so many memos waiting undelivered."""

    plugin_config = {"plugin:memo": {"max_pending_from": "3", "max_pending_to": "4"}}

    def test_per_sender(self):
        """Past max_pending_from undelivered memos the sender is told why and no memo is
        left; once one is delivered, another may be left."""
        for who in ("bob", "carol", "dave"):
            self.assertEqual(self.tell(f"tell {who} hi"), [f"alice: Okay, I'll tell {who}"])
        refused = self.tell("tell erin hi")
        self.assertEqual(
            refused,
            [
                "alice: You already have 3 memos waiting to be delivered; "
                "I'll take more once some of them are"
            ],
        )
        self.assertNoResponse("hello", sender="erin")
        self.assertResponseMatches("hello", "alice said just now: hi", sender="bob")
        self.assertEqual(self.tell("tell erin hi"), ["alice: Okay, I'll tell erin"])
        # Another sender is not held by alice's memos.
        self.assertEqual(
            self.tell("tell frank hi", sender="gina"), ["gina: Okay, I'll tell frank"]
        )

    def test_per_recipient(self):
        """Past max_pending_to undelivered memos for one recipient, whoever sends, the
        next is refused; reading them makes room."""
        for sender in ("alice", "carol", "dave", "erin"):
            self.tell("tell bob hi", sender=sender)
        self.assertEqual(
            self.tell("tell BOB hi", sender="frank"),
            ["frank: BOB already has 4 memos waiting; I'll take more once they have read some"],
        )
        self.say("back", sender="bob")
        self.assertEqual(self.tell("tell bob hi", sender="frank"), ["frank: Okay, I'll tell bob"])

    def test_per_account(self):
        """A recipient's cap counts the memos for their account, by any of its nicks."""
        self.link_account("robert", ("test", "bob"), ("test", "rob"))
        for sender, who in (("alice", "bob"), ("carol", "rob"), ("dave", "robert"), ("x", "bob")):
            self.assertEqual(self.tell(f"tell {who} hi", sender=sender)[0][-len(who) :], who)
        self.assertResponseMatches("botcore: tell rob hi", "rob already has 4 memos", sender="y")


class DefaultCapTests(MemoTestCase):
    """Without configuration both caps are on: 20 per sender, 50 per recipient."""

    def test_defaults(self):
        """The 21st waiting memo of one sender, and the 51st for one recipient, are
        refused."""
        for n in range(20):
            self.assertEqual(self.tell(f"tell n{n} hi"), [f"alice: Okay, I'll tell n{n}"])
        self.assertResponseMatches("botcore: tell n20 hi", "already have 20 memos", sender="alice")
        for n in range(49):  # n0 has alice's already
            self.tell("tell n0 hi", sender=f"s{n}")
        self.assertResponseMatches("botcore: tell n0 hi", "n0 already has 50 memos", sender="t")


for _case in (MemoTests, AccountMemoTests, CapTests):
    backend_variants(_case, globals())
del _case  # trial would collect it as a test class a second time


class IdentifyMemoTests(AccountMemoTests):
    """With the identity plugin's Identify setting event.identity and event.account."""

    load = ["memo", "identity"]


class WaitingTests(MemoTestCase):
    """Who has memos waiting is kept in memory: ordinary chatter costs no query, and no
    memo is missed (left here, left by another process, across a reload)."""

    def setUp(self):
        super().setUp()
        self.advance(0)  # the first read of who has memos waiting
        self.queries: list[str] = []
        engine = self.bot.databases["main"].engine

        def executed(connection, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and "memos" in statement:
                self.queries.append(statement)

        sa_event.listen(engine, "before_cursor_execute", executed)
        self.addCleanup(sa_event.remove, engine, "before_cursor_execute", executed)

    def insert_memo(self, to_nick: str, text: str) -> None:
        """A memo written by someone else (another bot process, a script)."""
        engine = self.bot.databases["main"].engine
        with engine.begin() as connection:
            connection.execute(
                insert(Memo.__table__),
                [
                    {
                        "from_source": "test",
                        "from_nick": "script",
                        "to_source": "test",
                        "to_nick": to_nick,
                        "memo": text,
                        "private": False,
                        "time": datetime.fromtimestamp(self.clock.seconds(), UTC),
                        "delivered": False,
                        "notified": False,
                    }
                ],
            )

    def test_chatter_costs_no_query(self):
        """Messages and joins of people with no memo waiting query no memo."""
        for n in range(5):
            self.assertNoResponse(f"chatter {n}", sender=f"p{n}")
        self.say(None, type=EventType.STATE, data={"kind": "join"}, sender="p1")
        self.assertEqual(self.queries, [])

    def test_delivered_then_forgotten(self):
        """A memo left is delivered on the recipient's next message (whatever case they
        write their nick in); after that their messages query nothing."""
        self.tell("tell Bob hi there")
        self.assertEqual(
            self.responses("hello", sender="BOB"), ["BOB: alice said just now: hi there"]
        )
        self.queries.clear()
        self.assertNoResponse("hello again", sender="bob")
        self.assertEqual(self.queries, [])

    def test_memo_from_elsewhere_after_refresh(self):
        """A memo written to the database by another process is delivered once the
        refresh has read it (within refresh_interval)."""
        self.insert_memo("carol", "from the script")
        self.assertNoResponse("hi", sender="carol")
        self.advance(self.processor("Deliver").refresh_interval)
        self.assertEqual(
            self.responses("hi", sender="carol"),
            ["carol: script said 1 minute ago: from the script"],
        )

    def test_reload_keeps_who_waits(self):
        """A reload hands over who has memos waiting: one left before is delivered after,
        and chatter still costs no query."""
        self.tell("tell dave see you")
        self.successResultOf(self.bot.plugins.reload_plugin("memo"))
        self.queries.clear()
        self.assertNoResponse("hi", sender="erin")
        self.assertEqual(self.queries, [])
        self.assertEqual(
            self.responses("hi", sender="dave"), ["dave: alice said just now: see you"]
        )

    def test_rolled_back_delivery_kept(self):
        """A delivery whose session rolls back leaves the recipient among those waiting:
        their memo comes at the next message."""
        self.tell("tell frank later")
        deliver = self.processor("Deliver")
        event = self.make_event("hi", sender="frank")
        event._session_factory = self.bot.databases["main"].session_factory
        deliver.process(event)
        self.assertTrue(event.responses)
        event.session.rollback()
        event.close_session()
        self.assertEqual(
            self.responses("hi", sender="frank"), ["frank: alice said just now: later"]
        )

    def test_found_nothing_forgotten(self):
        """Someone whose memo was delivered by another process is looked up once after
        the refresh said they had one, then no more."""
        self.insert_memo("gina", "from the script")
        self.advance(self.processor("Deliver").refresh_interval)
        engine = self.bot.databases["main"].engine
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE memos SET delivered = 1")
        self.queries.clear()
        self.assertNoResponse("hi", sender="gina")
        self.assertEqual(len(self.queries), 1)
        self.assertNoResponse("hi again", sender="gina")
        self.assertEqual(len(self.queries), 1)


class WaitingUnitTests(SynchronousTestCase):
    """The Waiting set on its own: an overlapping addition is never undone."""

    def test_remove_after_overlapping_add_keeps(self):
        """A removal by a query that began before a memo was added does not forget it."""
        waiting = Waiting()
        waiting.state["ready"] = True
        since = waiting.version()
        waiting.add("test", "bob", None)
        waiting.remove("test", "bob", None, since)
        self.assertTrue(waiting.may_have("test", "bob", None))
        waiting.remove("test", "bob", None, waiting.version())
        self.assertFalse(waiting.may_have("test", "bob", None))

    def test_not_ready_means_everyone(self):
        """Before the first read from the database, everybody may have memos."""
        self.assertTrue(Waiting().may_have("test", "anyone", None))

    def test_accounts(self):
        """An account with a memo waiting is known by its id."""
        waiting = Waiting()
        waiting.state["ready"] = True
        waiting.add(None, None, 7)
        self.assertTrue(waiting.may_have("test", "x", 7))
        self.assertFalse(waiting.may_have("test", "x", 8))
        self.assertFalse(waiting.may_have("test", "x", None))

    def test_keys_coarser_than_the_database(self):
        """Names the database compares as equal share a key (case, compatibility forms,
        accents and ignorable characters aside)."""
        same = ("Bob", "BOB", "\uff42\uff4f\uff42", "bob\u200b", "b\u00f6b", "[bob]")
        self.assertEqual({name_key("test", name) for name in same}, {name_key("test", "bob")})
        self.assertNotEqual(name_key("test", "bob"), name_key("test", "rob"))
