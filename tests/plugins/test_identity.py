"""The identity plugin as a conversation: accounts, linking identities across two sources,
passwords, brute-force slowing, grants and their escalation checks, and secrets kept out of
events and logs."""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import formatEvent, globalLogPublisher

from botcore.accounts import models as accounts
from botcore.event import Event, EventType, Message, Sender
from botcore.processor import Processor, authorise, handler, match
from botcore.testing import MemorySource, PluginTestCase

SECRET = "correct-horse-battery-staple"


class Guarded(Processor):
    """A command that needs the 'deploy' permission."""

    permission = "deploy"

    @authorise(fallthrough=False)
    @match("deploy")
    def deploy(self, event: Event) -> None:
        event.addresponse("deploying")


class Spy(Processor):
    """Records the raw text of every message it sees, right after Strip."""

    priority = -1650
    addressed = False
    processed = True
    seen: ClassVar[list[str]] = []

    @handler
    def spy(self, event: Event) -> None:
        if event.message is not None:
            Spy.seen.append(event.message.raw)


class IdentityTestCase(PluginTestCase):
    load = ("identity",)
    extra_processors = (Guarded, Spy)

    def setUp(self) -> None:
        super().setUp()
        Spy.seen = []
        self.other = MemorySource("other", self.bot.context, {})
        self.other.setServiceParent(self.bot.sources)

    def session(self) -> Any:
        return self.bot.databases["main"].session_factory()

    def make_account(self, name: str, identity: str, password: str | None = None, **perms: str):
        with self.session() as session:
            account = accounts.create_account(session, name)
            row = accounts.identify(session, "test", identity)
            accounts.link(session, row, account)
            if password:
                accounts.add_credential(session, account.id, "password", password)
            for perm, value in perms.items():
                accounts.set_permission(session, account.id, perm, value)
            session.commit()
            return account.id

    def say_on_other(self, text: str, nick: str = "bob") -> list[str]:
        event = Event(
            source="other",
            type=EventType.MESSAGE,
            sender=Sender(f"other:{nick}", nick, nick),
            channel=nick,
            addressed=True,
            message=Message(text),
        )
        start = len(self.other.sent)
        self.successResultOf(self.other.dispatch(event))
        self.last_event = event
        return [str(r.text) for r in self.other.sent[start:]]


class AccountTests(IdentityTestCase):
    """Creating, renaming and deleting accounts; identities and attributes."""

    def test_first_sight_creates_identity(self) -> None:
        """An event from a new sender creates its identity row and sets event.identity."""
        event = self.say("ping")
        self.assertIsNotNone(event.identity)
        with self.session() as session:
            self.assertEqual(accounts.find_identity(session, "test", "USER").id, event.identity)

    def test_create_account_links_sender(self) -> None:
        """'create account NAME' makes an account linked to the sender's identity, and
        its creator's connection is authenticated as it; another connection with the
        same nick is not."""
        self.assertResponseMatches("create account alice", "Created account alice")
        event = self.say("who am I")
        self.assertIsNotNone(event.account)
        self.assertIn("alice (authenticated)", self.replies[0].text)
        impostor = Sender("test:elsewhere", "user", "user")
        self.assertResponseMatches("who am I", r"alice \(not authenticated\)", sender=impostor)

    def test_second_account_refused(self) -> None:
        """Someone with an account cannot make another one unless admin."""
        self.say("create account alice")
        self.assertResponseMatches("create account alice2", "already have an account")

    def test_duplicate_name_ignoring_case(self) -> None:
        """Account names are unique whatever their case."""
        self.make_account("Alice", "someone")
        self.assertResponseMatches("create account ALICE", "already an account called")

    def test_lookalike_account_names_refused(self) -> None:
        """'create account' refuses names that would display as an existing account's or
        hide invisible characters, saying why."""
        self.make_account("admin", "root")
        self.assertResponseMatches("create account \u0430dmin", "mix scripts")
        self.assertResponseMatches("create account admin\u200b", "U\\+200B")
        self.assertResponseMatches(
            "create account adm\u0131n", "looks too much like the account admin"
        )
        self.assertIsNone(self.say("who am I").account)

    def test_attributes(self) -> None:
        """Attributes are set, shown and removed, by the authenticated owner only."""
        self.say("create account alice")
        self.assertSucceeds("set my timezone to Europe/Paris")
        self.assertResponseMatches("my attributes", "timezone: Europe/Paris")
        impostor = Sender("test:elsewhere", "user", "user")
        self.assertResponseMatches("remove my timezone", "authenticate", sender=impostor)
        self.assertResponseMatches("set my timezone to Mars", "authenticate", sender=impostor)
        self.assertResponseMatches("my attributes", "timezone: Europe/Paris")
        self.assertSucceeds("remove my timezone")
        self.assertResponseMatches("attributes of alice", "no attributes")

    def test_rename_and_delete_own_when_authenticated(self) -> None:
        """The owner renames and deletes their account once authenticated, not before."""
        self.make_account("alice", "user", SECRET)
        self.assertFails("rename account alice to alicia")
        self.say(f"auth {SECRET}")
        self.assertResponseMatches("rename account alice to alicia", "now called alicia")
        self.assertResponseMatches("delete account alicia", "Deleted")
        event = self.say("who am I")
        self.assertIsNone(event.account)


class PasswordTests(IdentityTestCase):
    """Authenticating with a password."""

    def test_wrong_password_rejected(self) -> None:
        """A wrong password is refused and leaves the sender unauthenticated."""
        self.make_account("alice", "user", SECRET)
        self.assertResponseMatches("auth wrong", "didn't work")
        self.assertIn("not authenticated", self.responses("who am I")[0])

    def test_right_password_lasts_per_connection_until_timeout(self) -> None:
        """After 'auth SECRET' later events on the same connection are authenticated, until
        [auth] timeout runs out; another connection is not."""
        self.make_account("alice", "user", SECRET, deploy="auth")
        self.assertResponseMatches("deploy", "boss|listen|yourself|shell")
        self.assertResponseMatches(f"auth {SECRET}", "now authenticated")
        self.assertResponseMatches("deploy", "deploying")
        other = Sender("test:elsewhere", "user", "user")
        self.assertFalse(self.say("ping", sender=other).authenticated)
        self.advance(3601)
        self.assertFalse(self.say("ping").authenticated)

    def test_authenticate_command(self) -> None:
        """'authenticate USER using password SECRET' works for one's own account only."""
        self.make_account("alice", "user", SECRET)
        self.make_account("mallory", "mallory", "other-secret")
        self.assertResponseMatches(
            "authenticate mallory using password other-secret", "can't authenticate"
        )
        self.assertResponseMatches(
            f"authenticate alice using password {SECRET}", "now authenticated"
        )

    def test_brute_force_slowed(self) -> None:
        """After max_failures wrong passwords a connection waits failure_delay before its
        next attempt is checked (even the right one), doubled for each further failure."""
        self.make_account("alice", "user", SECRET)
        for _ in range(5):
            self.assertResponseMatches("auth nope", "didn't work")
        self.assertResponseMatches(f"auth {SECRET}", "try again in 10 seconds")
        self.advance(10)
        self.assertResponseMatches("auth nope", "didn't work")
        self.assertResponseMatches(f"auth {SECRET}", "try again in 20 seconds")
        self.advance(20)
        self.assertResponseMatches(f"auth {SECRET}", "now authenticated")

    def test_impostor_cannot_lock_out_owner(self) -> None:
        """Failures are counted for the connection that made them: an impostor using the
        admin's nick from another connection slows only itself."""
        self.make_account("admin", "admin", SECRET, admin="auth")
        impostor = Sender("test:impostor", "admin", "admin")
        for _ in range(8):
            self.say("auth nope", sender=impostor)
        self.assertResponseMatches(f"auth {SECRET}", "try again", sender=impostor)
        self.assertResponseMatches(f"auth {SECRET}", "now authenticated", sender="admin")

    def test_password_checks_bounded(self) -> None:
        """While max_checks password checks run, another is answered 'busy' unchecked
        (and not counted as a failure); one connection runs one check at a time."""
        self.make_account("alice", "user", SECRET)
        auth = self.bot.context.auth
        self.assertTrue(auth.start_check(("test", "one")))
        self.assertFalse(auth.start_check(("test", "one")))
        self.assertTrue(auth.start_check(("test", "two")))
        self.assertResponseMatches(f"auth {SECRET}", "busy")
        self.assertFalse(self.say("ping").authenticated)
        self.assertResponseMatches(f"create account bob password {SECRET}", "busy",
                                   sender="bobby")  # fmt: skip
        auth.end_check(("test", "two"))
        self.assertResponseMatches(f"auth {SECRET}", "now authenticated")
        auth.end_check(("test", "one"))
        self.assertEqual(auth.state.checking, set())

    def test_set_password_needs_authentication(self) -> None:
        """The creator's connection sets the first password; another connection with the
        same nick sets none, first or later, until it authenticates."""
        self.say("create account alice")
        impostor = Sender("test:elsewhere", "user", "user")
        self.assertResponseMatches("set password mine", "authenticate first", sender=impostor)
        self.assertResponseMatches(f"set password {SECRET}", "password is set")
        self.assertResponseMatches("set password another", "authenticate first", sender=impostor)
        self.assertResponseMatches(f"auth {SECRET}", "now authenticated", sender=impostor)
        self.assertResponseMatches("set password another", "password is set", sender=impostor)
        self.assertResponseMatches("auth another", "now authenticated")

    def test_passwordless_account_not_taken_by_nick(self) -> None:
        """Someone using the nick of a password-less account's identity (mallory on the
        console) cannot give it a first password and take it; an admin can."""
        self.make_account("carol", "carol")
        self.make_account("root", "root", SECRET, admin="auth")
        mallory = Sender("test:mallory-connection", "carol", "carol")
        self.assertResponseMatches("set password mine", "authenticate first", sender=mallory)
        self.assertResponseMatches("auth mine", "didn't work", sender=mallory)
        self.assertResponseMatches("set password for carol x", "boss|listen|yourself|shell",
                                   sender=mallory)  # fmt: skip
        self.say(f"auth {SECRET}", sender="root")
        self.assertResponseMatches(f"set password for carol {SECRET}2", "carol is set",
                                   sender="root")  # fmt: skip
        self.assertResponseMatches(f"auth {SECRET}2", "now authenticated", sender="carol")

    def test_hostmask(self) -> None:
        """A hostmask credential authenticates a sender whose mask matches."""
        self.make_account("alice", "user", SECRET)
        self.say(f"auth {SECRET}")
        self.assertSucceeds("add hostmask user!*@*.example.org")
        self.say("logout")
        event = self.make_event(
            "authenticate alice using hostmask x", data={"mask": "user!u@host.example.org"}
        )
        self.assertResponseMatches(event, "now authenticated")

    def test_hostmask_automatic(self) -> None:
        """A sender whose mask matches a hostmask credential is authenticated without
        asking; another mask is not."""
        self.make_account("alice", "user", SECRET)
        self.say(f"auth {SECRET}")
        self.say("add hostmask user!*@*.example.org")
        self.say("logout")
        event = self.say("ping", data={"mask": "user!u@evil.example.com"})
        self.assertFalse(event.authenticated)
        event = self.say("ping", data={"mask": "user!u@host.example.org"})
        self.assertTrue(event.authenticated)

    def test_public_secret_is_scrubbed_and_refused(self) -> None:
        """A password said in public is removed, not checked, and the sender is warned."""
        self.make_account("alice", "user", SECRET)
        event = self.make_event(f"botcore: auth {SECRET}", public=True)
        self.assertResponseMatches(event, "in public")
        self.assertFalse(event.authenticated)
        self.assertNotIn(SECRET, event.message.raw)


class LinkingTests(IdentityTestCase):
    """Linking identities on two sources to one account."""

    def test_i_am_with_token(self) -> None:
        """'I am bob on other' sends a token there; only bob saying it back links, and then
        permissions and attributes follow bob."""
        self.make_account("alice", "user", SECRET, deploy="yes")
        self.assertResponseMatches("I am bob on other", "authenticate as alice first")
        self.say(f"auth {SECRET}")
        self.say("set my colour to blue")
        self.assertResponseMatches("I am bob on other", "sent a token")
        token = self.other.sent[-1].text.rsplit(" ", 1)[1]
        self.assertEqual(self.other.sent[-1].target, "bob")
        self.assertEqual(self.say_on_other(f"link token {token}", nick="eve")[0][:4], "That")
        self.assertIn("Linked", self.say_on_other(f"link token {token}")[0])
        self.assertEqual(self.say_on_other("deploy"), ["deploying"])
        self.assertIn("colour: blue", self.say_on_other("my attributes")[0])
        self.assertNotIn(token, repr(self.last_event))

    def test_token_does_not_move_anothers_identity(self) -> None:
        """mallory's 'I am admin on test' plus the token, said by someone using the nick
        admin without authenticating, does not move the admin's identity; the admin,
        authenticated, may move it."""
        self.make_account("admin", "admin", SECRET, admin="auth")
        self.make_account("mallory", "mallory", "mallory-secret")
        self.say("auth mallory-secret", sender="mallory")
        self.assertResponseMatches("I am admin on test", "sent a token", sender="mallory")
        token = self.source.sent[-2].text.rsplit(" ", 1)[1]
        nick_thief = Sender("test:mallory-again", "admin", "admin")
        self.assertResponseMatches(f"link token {token}", "belongs to admin", sender=nick_thief)
        self.assertResponseMatches("who am I", r"You are admin \(not auth", sender=nick_thief)
        self.assertResponseMatches(f"auth {SECRET}", "now authenticated", sender="admin")
        self.assertResponseMatches(f"link token {token}", "you are mallory", sender="admin")

    def test_admin_link_and_unlink(self) -> None:
        """Admins link and unlink anyone's identity; others may not."""
        self.make_account("alice", "user", SECRET, admin="auth")
        self.make_account("bob", "bobby")
        self.assertFails("link bob on other to bob")
        self.say(f"auth {SECRET}")
        self.assertResponseMatches("link bob on other to bob", "Linked bob on other to bob")
        self.assertIn("bob", self.say_on_other("who am I")[0])
        self.assertResponseMatches("unlink bob on other", "Unlinked")
        self.assertIn("no account", self.say_on_other("who am I")[0])


class GrantTests(IdentityTestCase):
    """Granting, revoking and listing permissions."""

    def test_grant_needs_admin(self) -> None:
        """Without admin, granting (even admin to oneself) is refused."""
        self.make_account("alice", "user", SECRET)
        self.say(f"auth {SECRET}")
        self.assertFails("grant admin to alice")
        self.assertResponseMatches("permissions", "no permissions")

    def test_permissions_only_for_owner_and_admins(self) -> None:
        """An account's permission rows are shown to the account, authenticated, and to
        admins: not to someone merely using its nick, nor to a stranger."""
        self.make_account("alice", "user", SECRET, admin="auth", deploy="yes")
        self.make_account("bob", "bobby", "bob-secret")
        self.assertResponseMatches("permissions", "^Only alice .* may see", sender="user")
        self.assertResponseMatches(
            "permissions for alice", "^Only alice .* may see", sender="bobby"
        )
        self.say("auth bob-secret", sender="bobby")
        self.assertResponseMatches(
            "permissions for alice", "^Only alice .* may see", sender="bobby"
        )
        self.assertResponseMatches("permissions", "no permissions", sender="bobby")
        self.say(f"auth {SECRET}")
        self.assertResponseMatches("permissions", r"^alice: admin, \+deploy$")
        self.assertResponseMatches("permissions for bob", "no permissions")

    def test_cannot_grant_what_one_lacks(self) -> None:
        """An admin without 'deploy' cannot grant it; an unknown permission is refused."""
        self.make_account("alice", "user", SECRET, admin="auth")
        self.make_account("bob", "bobby")
        self.say(f"auth {SECRET}")
        self.assertFails("grant deploy to bob")
        self.assertResponseMatches("grant nonsense to bob", "don't know a permission")
        self.assertResponseMatches("permissions for bob", "no permissions")

    def test_grant_revoke_remove(self) -> None:
        """An admin with the permission grants, revokes and removes it; the cache follows."""
        self.make_account("alice", "user", SECRET, admin="auth", deploy="auth")
        self.make_account("bob", "bobby")
        self.say(f"auth {SECRET}")
        bob = Sender("test:bobby", "bobby", "bobby")
        self.assertFails("deploy", sender=bob)
        self.assertSucceeds("grant deploy to bob always")
        self.assertResponseMatches("permissions for bob", r"bob: \+deploy")
        self.assertResponseMatches("deploy", "deploying", sender=bob)
        self.assertSucceeds("revoke deploy from bob")
        self.assertFails("deploy", sender=bob)
        self.assertSucceeds("remove permission deploy from bob")
        self.assertResponseMatches("permissions for bob", "no permissions")

    def test_grant_means_once_authenticated(self) -> None:
        """'grant P to U' holds only once U has authenticated (an impostor with U's nick
        gets nothing); 'always' is said explicitly."""
        self.make_account("alice", "user", SECRET, admin="auth", deploy="auth")
        self.make_account("carol", "carol", "carol-secret")
        self.say(f"auth {SECRET}")
        self.assertSucceeds("grant deploy to carol")
        self.assertResponseMatches("permissions for carol", r"carol: deploy$")
        self.assertFails("deploy", sender="carol")
        self.say("auth carol-secret", sender="carol")
        self.assertResponseMatches("deploy", "deploying", sender="carol")
        self.assertSucceeds("grant deploy to carol when authenticated")
        self.assertResponseMatches("permissions for carol", r"carol: deploy$")

    def test_squatted_account_name_is_ambiguous(self) -> None:
        """mallory's account called carol does not capture a grant meant for the identity
        carol: the bare name is refused as ambiguous, the explicit forms work."""
        self.make_account("alice", "user", SECRET, admin="auth", deploy="auth")
        self.make_account("carol", "mallory")  # mallory made an account called carol
        self.make_account("caroline", "carol")  # the real carol (identity carol)
        self.say(f"auth {SECRET}")
        self.assertResponseMatches("grant deploy to carol", "ambiguous")
        self.assertResponseMatches("permissions for account carol", "no permissions")
        self.assertSucceeds("grant deploy to carol on test")
        self.assertResponseMatches("permissions for account caroline", "caroline: deploy")
        self.assertResponseMatches("permissions for account carol", "no permissions")
        self.assertSucceeds("revoke deploy from account carol")
        self.assertResponseMatches("permissions for account carol", "-deploy")

    def test_factoidadmin_grantable(self) -> None:
        """A permission a plugin's code checks itself and declares (factoid's
        factoidadmin) is known, so it can be granted from chat."""
        self.bot.plugins.load_plugin("factoid")
        self.make_account("alice", "user", SECRET, admin="auth", factoidadmin="auth")
        self.make_account("bob", "bobby")
        self.say(f"auth {SECRET}")
        self.assertSucceeds("grant factoidadmin to bob")
        self.assertResponseMatches("permissions for bob", "bob: factoidadmin")
        from botcore.cli.setup import admin_permissions

        self.assertIn("factoidadmin", admin_permissions())  # botcore-setup's admin has it


class SecretTests(IdentityTestCase):
    """No secret reaches a later processor or a log line."""

    def test_no_secret_in_logs_or_later_processors(self) -> None:
        """A full session (set password, authenticate, auth, grant, a failure) logged at
        every level contains no secret, and no processor after Secrets saw one."""
        logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            logged.append(formatEvent(event))
            logged.append(repr(event))
            failure = event.get("log_failure")
            if failure is not None:
                logged.append(failure.getTraceback())

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.make_account("root", "admin", admin="auth", deploy="auth")
        self.make_account("bob", "bobby")
        admin = Sender("test:admin", "admin", "admin")
        events = [
            self.say(f"set password {SECRET}", sender=admin),
            self.say("auth wrong-one", sender=admin),
            self.say(f"authenticate root using password {SECRET}", sender=admin),
            self.say(f"auth {SECRET}", sender=admin),
            self.say("grant deploy to bob", sender=admin),
            self.say(f"create account carol password {SECRET}x"),
        ]
        self.assertTrue(events[-2].processed)
        self.assertTrue(logged)
        for text in logged + Spy.seen + [repr(e) for e in events]:
            self.assertNotIn(SECRET, text)
            self.assertNotIn("wrong-one", text)
        with self.session() as session:
            carol = accounts.find_account(session, "carol")
            self.assertTrue(
                accounts.check_credentials(session, carol.id, "x", "password", SECRET + "x")
            )


#: Every form of address Addressed accepts, with the bot's name, its other name (``[bot]
#: names``) and its current nick on the source, each carrying ``auth SECRET``.
ADDRESSED_AUTH = (
    f"botcore: auth {SECRET}",
    f"botcore, auth {SECRET}",
    f"botcore> auth {SECRET}",
    f"botcore auth {SECRET}",
    f"auth {SECRET}, botcore",
    f"botcore:auth {SECRET}",
    f"botcore,auth {SECRET}",
    f"botcore; auth {SECRET}",
    f"botcore. auth {SECRET}",
    f"botcore? auth {SECRET}",
    f"botcore! auth {SECRET}",
    f"botcore - auth {SECRET}",
    f"botcore -> auth {SECRET}",
    f"botcore:: auth {SECRET}",
    f"  BOTCORE:   auth {SECRET}  ",
    f"auth {SECRET},botcore",
    f"auth {SECRET}, botcore?!",
    f"bc> auth {SECRET}",
    f"auth {SECRET}, bc",
    f"robo> auth {SECRET}",
    f"robo auth {SECRET}",
)


class AddressedSecretTests(IdentityTestCase):
    """However the bot is addressed, a secret said to it reaches no later processor, log
    line, seen's table or conversation log (the leak was ``botcore> auth x``)."""

    load = ("identity", "seen", "log")
    public = True
    plugin_config: ClassVar = {"bot": {"names": "bc"}}

    def setUp(self) -> None:
        super().setUp()
        self.source.nick = "robo"  # its nick on the source is a name too
        self.logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            self.logged.append(formatEvent(event))
            self.logged.append(repr(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def stored(self) -> list[str]:
        """Everything seen's table and the log plugin's files hold."""
        from sqlalchemy import select

        from botcore.plugins.seen import Sighting

        with self.session() as session:
            texts = [repr(row) for row in session.execute(select(Sighting.__table__))]
        self.processor("Log").flush()  # what the log keeps in memory, written
        texts += [path.read_text() for path in (self.directory / "logs").rglob("*.log")]
        return texts

    def addressed_command(self, text: str) -> bool:
        """Whether Addressed takes ``text`` as said to the bot with the command first in
        what is said: tried on the same text with harmless words for "auth SECRET"
        (Secrets takes the real one out of the chain before Addressed runs)."""
        probe = self.say(self.make_event(text.replace(f"auth {SECRET}", "hello there")))
        return bool(probe.addressed) and probe.message.clean.startswith("hello there")

    def assertNoSecret(self, events: list[Event]) -> None:
        for text in self.logged + Spy.seen + self.stored() + [repr(event) for event in events]:
            self.assertNotIn(SECRET, text)

    def test_every_form_in_public(self) -> None:
        """Said in a channel, each form is addressed (Addressed accepts it), scrubbed and
        warned about, and seen does not repeat it."""
        events = []
        for text in ADDRESSED_AUTH:
            self.assertTrue(self.addressed_command(text), text)
            event = self.make_event(text)
            self.assertResponseMatches(event, "in public")
            self.assertNotIn(SECRET, event.message.raw, text)
            events.append(event)
        self.assertResponseMatches("botcore: seen user", r"saying '.*\[secret\]", sender="bob")
        self.assertTrue(self.stored())
        self.assertNoSecret(events)

    def test_every_form_in_private(self) -> None:
        """Said in private, each form is carried out (the password checked), and the
        secret is kept out of everything."""
        self.make_account("alice", "user", SECRET)
        events = []
        for text in ADDRESSED_AUTH:
            event = self.make_event(text, public=False)
            self.assertResponseMatches(event, "^You are now authenticated$")
            self.assertTrue(event.authenticated, text)
            events.append(event)
        self.assertTrue(self.stored())
        self.assertNoSecret(events)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        before=st.text(" \t", max_size=2),
        name=st.sampled_from(["botcore", "BotCore", "bc", "robo"]),
        separator=st.text(":;.?>!,- \t", max_size=4),
        after=st.text(" \t?!.,", max_size=3),
        trailing=st.booleans(),
    )
    def test_any_separator(
        self, before: str, name: str, separator: str, after: str, trailing: bool
    ) -> None:
        """Whatever separates the name from the command: when Addressed takes the message
        as a command said to the bot, the secret is gone from it."""
        text = (
            f"{before}auth {SECRET}{separator}{name}{after}"
            if trailing
            else f"{before}{name}{separator}auth {SECRET}{after}"
        )
        event = self.say(self.make_event(text))
        if self.addressed_command(text):
            self.assertNotIn(SECRET, event.message.raw, text)


class NotACommandTests(IdentityTestCase):
    """Text that merely mentions a secret command is left to the other plugins."""

    def test_auth_mid_sentence(self) -> None:
        """'what is auth for' is not an auth command: untouched, not taken."""
        event = self.say("what is auth for")
        self.assertEqual(event.message.raw, "what is auth for")
        self.assertNotIn("authenticated", " ".join(str(r.text) for r in self.replies))

    def test_addressed_in_public(self) -> None:
        """'botcore, auth x' in public is scrubbed and warned about; 'auth x' unaddressed in
        public is scrubbed silently."""
        event = self.make_event("auth hunter2", public=True)
        self.assertNoResponse(event)
        self.assertNotIn("hunter2", event.message.raw)
        event = self.make_event("botcore, auth hunter2", public=True)
        self.assertResponseMatches(event, "in public")
        self.assertEqual(event.message.raw, "botcore, auth [secret]")


class SourceHookTests(IdentityTestCase):
    """Sources that vouch for their users."""

    def test_vouched_identity_is_authenticated(self) -> None:
        """When the source vouches for the sender's id, a linked account is authenticated
        with no password; an unlinked sender is not."""
        self.source.verified_identity = lambda event: event.sender.id
        self.make_account("alice", "user", deploy="auth")
        event = self.say("deploy")
        self.assertTrue(event.authenticated)
        self.assertEqual([str(r.text) for r in self.replies], ["deploying"])
        stranger = Sender("test:x", "stranger", "stranger")
        self.assertFalse(self.say("ping", sender=stranger).authenticated)

    def test_telnet_and_irc_hooks(self) -> None:
        """A trusted telnet console vouches for its nicks; IRC for the services account the
        server reported; neither for anyone else."""
        from botcore.sources.irc import IRCSource
        from botcore.sources.telnet import TelnetSource

        event = self.make_event("hi", data={"account": "alice"})
        trusted = TelnetSource("test", self.bot.context, {"trusted": True})
        self.assertEqual(trusted.verified_identity(event), "user")
        self.assertIsNone(TelnetSource("test", self.bot.context, {}).verified_identity(event))
        irc = IRCSource("test", self.bot.context, {"servers": ["tcp:127.0.0.1:6667"]})
        self.assertEqual(irc.verified_identity(event), "alice")
        self.assertIsNone(irc.verified_identity(self.make_event("hi")))

    def test_telnet_debug_log_scrubbed(self) -> None:
        """The telnet console's debug line for a message holds no password."""
        from botcore.sources.telnet import TelnetSource

        logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        console = TelnetSource("console", self.bot.context, {})

        class Person:
            nick = "user"
            connection_id = "console#1"
            host = "127.0.0.1"

        self.successResultOf(console.message(Person(), f"auth {SECRET}"))
        self.assertTrue(any("says" in line for line in logged))
        self.assertFalse([line for line in logged if SECRET in line])
