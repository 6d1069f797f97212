"""One authenticated XMPP stream of the XMPP source: stanzas in, events out; replies,
presences and pings out. Rooms and their occupants live here and end with the stream
(the source rejoins after a reconnect). Reactor thread only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from botcore.event import Attachment, Event, EventType, Message, Sender
from botcore.sources.xmpp import model
from botcore.sources.xmpp import stanzas as st

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from botcore.sources.xmpp import XMPPSource

ROLE_PREFIX = {"moderator": "@", "participant": "", "visitor": ""}


@dataclass
class Occupant:
    nick: str
    jid: str | None = None
    role: str = "participant"
    affiliation: str = "none"
    #: The room's XEP-0421 occupant-id (trusted only where the room gives the bot one).
    occupant_id: str | None = None


@dataclass
class Room:
    """A room the bot is in or joining."""

    jid: str
    nick: str
    password: str | None = None
    joined: bool = False
    tries: int = 0
    occupants: dict[str, Occupant] = field(default_factory=dict)
    #: Whether the room stamps occupants with XEP-0421 occupant-ids (it gave the bot
    #: one): only then is an occupant-id not something a client wrote itself.
    occupant_ids: bool = False


class XMPPConnection:
    """What the source does on one stream, from authentication until it closes."""

    log = Logger()

    def __init__(self, source: XMPPSource, xs: Any, clock: IReactorTime) -> None:
        self.source = source
        self.xs = xs
        self.clock = clock
        self.jid: JID = xs.authenticator.jid
        self.rooms: dict[str, Room] = {}
        self._ping_id = 0
        self._ping_timer: IDelayedCall | None = None
        self._ping_due: IDelayedCall | None = None
        self._rejoins: dict[str, IDelayedCall] = {}
        self.timed_out = False
        self.closed = False
        xs.addObserver("/message", self._guard, handler=self.on_message)
        xs.addObserver("/presence", self._guard, handler=self.on_presence)
        xs.addObserver("/iq", self._guard, handler=self.on_iq)

    # -- plumbing -------------------------------------------------------------------------

    def _guard(self, element: domish.Element, handler: Any) -> None:
        """Run a stanza handler; a stanza that breaks it is logged, never fatal."""
        try:
            handler(element)
        except Exception:
            self.log.failure(
                "{source}: a stanza could not be handled: {xml}",
                source=self.source.name,
                xml=_shorten(element),
            )

    def send(self, element: domish.Element) -> None:
        if not self.closed:
            self.xs.send(element)

    def start(self) -> None:
        """The stream is authenticated: go online, start pinging."""
        self.send(st.presence())
        self._schedule_ping()

    def close(self) -> None:
        """The stream is gone: stop every timer."""
        self.closed = True
        for room in self.rooms.values():
            self.source.room_nick_changed(room.jid, None)
        for timer in (self._ping_timer, self._ping_due, *self._rejoins.values()):
            if timer is not None and timer.active():
                timer.cancel()
        self._rejoins.clear()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    # -- XEP-0199 ping --------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        if self.closed:
            return
        self._ping_timer = self.clock.callLater(self.source.ping_interval, self._ping)

    def _ping(self) -> None:
        if self.source.input_paused:
            # Not reading the stream: its answer would go unread. Ask later.
            self._schedule_ping()
            return
        self._ping_id += 1
        iq = domish.Element((st.NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq["id"] = f"botcore-ping-{self._ping_id}"
        iq["to"] = self.jid.host
        iq.addElement((st.NS_PING, "ping"))
        self.send(iq)
        self._ping_due = self.clock.callLater(self.source.ping_timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        if self.source.input_paused:
            # The answer may be waiting unread: wait again once reading resumes.
            self._ping_due = self.clock.callLater(self.source.ping_timeout, self._ping_timed_out)
            return
        self.log.warn(
            "{source}: no answer to a ping in {timeout}s; reconnecting",
            source=self.source.name,
            timeout=self.source.ping_timeout,
        )
        self.timed_out = True
        transport = self.xs.transport
        if transport is not None:
            transport.abortConnection()

    def on_iq(self, iq: domish.Element) -> None:
        kind = iq.getAttribute("type")
        if kind in ("result", "error"):
            if iq.getAttribute("id") == f"botcore-ping-{self._ping_id}":
                # Any answer (an error too: the server is alive) ends the wait.
                if self._ping_due is not None and self._ping_due.active():
                    self._ping_due.cancel()
                self._ping_due = None
                self._schedule_ping()
            return
        if kind not in ("get", "set"):
            return
        payload = iq.firstChildElement()
        if kind == "get" and payload is not None and payload.uri == st.NS_PING:
            answer = domish.Element((st.NS_CLIENT, "iq"))
            if iq.getAttribute("from"):
                answer["to"] = iq["from"]
            answer["id"] = iq.getAttribute("id", "")
            answer["type"] = "result"
            self.send(answer)
        elif kind == "get" and payload is not None and payload.uri == st.NS_DISCO_INFO:
            if payload.getAttribute("node"):
                self.send(st.reply_error(iq, "item-not-found"))
                return
            answer = domish.Element((st.NS_CLIENT, "iq"))
            if iq.getAttribute("from"):
                answer["to"] = iq["from"]
            answer["id"] = iq.getAttribute("id", "")
            answer["type"] = "result"
            query = answer.addElement((st.NS_DISCO_INFO, "query"))
            identity = query.addElement("identity")
            identity["category"], identity["type"], identity["name"] = "client", "bot", "botcore"
            for feature in st.FEATURES:
                query.addElement("feature")["var"] = feature
            self.send(answer)
        elif payload is not None and payload.uri == st.NS_ROSTER and kind == "set":
            # A roster push: acknowledge it (RFC 6121 2.1.6).
            sender = st.parse_jid(iq.getAttribute("from"))
            if sender is None or sender.userhost() == self.jid.userhost():
                answer = domish.Element((st.NS_CLIENT, "iq"))
                answer["id"] = iq.getAttribute("id", "")
                answer["type"] = "result"
                self.send(answer)
        else:
            self.send(st.reply_error(iq, "service-unavailable"))

    # -- presence -------------------------------------------------------------------------

    def on_presence(self, presence: domish.Element) -> None:
        sender = st.parse_jid(presence.getAttribute("from"))
        if sender is None:
            return
        kind = presence.getAttribute("type")
        room = self.rooms.get(sender.userhost())
        if room is not None and (sender.resource or kind == "error"):
            self._room_presence(room, sender, kind, presence)
        elif kind in ("subscribe", "unsubscribe", "subscribed", "unsubscribed"):
            self._subscription(sender, kind)

    def _subscription(self, sender: JID, kind: str) -> None:
        bare = sender.userhost()
        if kind != "subscribe":
            return
        if self.source.accepts_subscription(bare):
            self.log.info(
                "{source}: accepted {jid}'s subscription", source=self.source.name, jid=bare
            )
            self.send(st.presence(bare, "subscribed"))
            self.send(st.presence(bare, "subscribe"))
        else:
            self.log.info(
                "{source}: refused {jid}'s subscription", source=self.source.name, jid=bare
            )
            self.send(st.presence(bare, "unsubscribed"))

    def _room_presence(
        self, room: Room, sender: JID, kind: str | None, presence: domish.Element
    ) -> None:
        nick = sender.resource or ""
        codes = st.status_codes(presence)
        if kind == "error":
            self._join_error(room, presence)
            return
        item = st.muc_item(presence)
        real = st.parse_jid(item.getAttribute("jid")) if item is not None else None
        role = item.getAttribute("role", "participant") if item is not None else "participant"
        affiliation = item.getAttribute("affiliation", "none") if item is not None else "none"
        if "110" in codes:
            if kind is None:
                room.occupant_ids = model.occupant_id(presence) is not None
            self._self_presence(room, nick, kind, codes, item)
            return
        known = room.occupants.get(nick)
        if kind == "unavailable":
            room.occupants.pop(nick, None)
            if not room.joined or known is None:
                return
            if "303" in codes and item is not None and item.getAttribute("nick"):
                new = item["nick"]
                room.occupants[new] = Occupant(new, known.jid, known.role, known.affiliation)
                self._state(room, known, "nick", old=nick, nick=new)
            elif "307" in codes:
                self._state(room, known, "kick", reason=st.text_of(_reason(item)))
            elif "301" in codes:
                self._state(room, known, "ban", reason=st.text_of(_reason(item)))
            else:
                self._state(room, known, "part", message=st.text_of(st.child(presence, "status")))
            return
        if kind is not None:
            return
        occupant = Occupant(
            nick,
            real.userhost() if real is not None else None,
            role,
            affiliation,
            model.occupant_id(presence),
        )
        room.occupants[nick] = occupant
        if not room.joined:
            return  # the room's list of who is there, before the bot's own presence
        if known is None:
            self._state(room, occupant, "join")
        elif (known.role, known.affiliation) != (role, affiliation):
            self._state(room, occupant, "role", role=role, affiliation=affiliation)

    def _self_presence(
        self, room: Room, nick: str, kind: str | None, codes: set[str], item: Any
    ) -> None:
        if kind == "unavailable":
            if "303" in codes and item is not None and item.getAttribute("nick"):
                room.nick = item["nick"]
                self.source.room_nick_changed(room.jid, room.nick)
                return
            room.joined = False
            room.occupants.clear()
            self.source.room_nick_changed(room.jid, None)
            kicked = "307" in codes
            banned = "301" in codes
            self._source_event("left", room.jid, kicked=kicked, banned=banned)
            if (kicked or "333" in codes) and self.source.wants_room(room.jid):
                self.log.info(
                    "{source}: removed from {room}; rejoining in {delay}s",
                    source=self.source.name,
                    room=room.jid,
                    delay=self.source.rejoin_delay,
                )
                self._rejoins[room.jid] = self.clock.callLater(
                    self.source.rejoin_delay, self._rejoin, room.jid
                )
            else:
                self.rooms.pop(room.jid, None)
            return
        if nick != room.nick or not room.joined:
            # The room may have given another nick than asked (a conflict's nick_, or
            # status 210): the bot is addressed by the one it has.
            self.source.room_nick_changed(room.jid, nick)
        room.nick = nick
        if not room.joined:
            room.joined = True
            room.tries = 0
            self.log.info(
                "{source}: joined {room} as {nick}",
                source=self.source.name,
                room=room.jid,
                nick=nick,
            )
            self._source_event("joined", room.jid, nick=nick)

    def _rejoin(self, room_jid: str) -> None:
        self._rejoins.pop(room_jid, None)
        wanted = self.source.wanted_room(room_jid)
        if wanted is not None:
            self.join(room_jid, *wanted)

    def _join_error(self, room: Room, presence: domish.Element) -> None:
        condition = st.error_condition(presence)
        if room.joined:
            return
        if condition == "conflict" and room.tries < 5:
            room.tries += 1
            room.nick = f"{self.source.room_nick()}{'_' * room.tries}"
            self.send(st.join_presence(room.jid, room.nick, room.password))
            return
        self.log.warn(
            "{source}: cannot join {room}: {condition}",
            source=self.source.name,
            room=room.jid,
            condition=condition or "unknown error",
        )
        self.rooms.pop(room.jid, None)

    def join(self, room_jid: str, nick: str, password: str | None) -> None:
        room = self.rooms.get(room_jid)
        if room is not None and room.joined:
            return
        room = self.rooms[room_jid] = Room(room_jid, nick, password)
        self.send(st.join_presence(room_jid, nick, password))

    def part(self, room_jid: str, message: str | None) -> None:
        timer = self._rejoins.pop(room_jid, None)
        if timer is not None and timer.active():
            timer.cancel()
        room = self.rooms.pop(room_jid, None)
        if room is not None:
            leave = st.presence(f"{room_jid}/{room.nick}", "unavailable")
            if message:
                leave.addElement("status", content=st.xml_safe(message))
            self.send(leave)

    # -- messages -------------------------------------------------------------------------

    def on_message(self, stanza: domish.Element) -> None:
        sender = st.parse_jid(stanza.getAttribute("from"))
        if sender is None:
            return
        kind = stanza.getAttribute("type", "normal")
        if kind == "error":
            self.log.info(
                "{source}: error from {jid}: {condition}",
                source=self.source.name,
                jid=sender.full(),
                condition=st.error_condition(stanza),
            )
            return
        if self._invite(sender, stanza):
            return
        room = self.rooms.get(sender.userhost())
        if kind == "groupchat":
            if room is None or not room.joined or st.is_delayed(stanza):
                return  # not a room the bot is in, or its history replay
            if not sender.resource:
                self._room_notice(room, stanza)
                return
            own = model.sender_id(stanza)
            message_id = model.stanza_id(stanza, room.jid)
            if self._reflected(room, sender.resource, own, message_id, stanza):
                return
            occupant = room.occupants.get(sender.resource) or Occupant(sender.resource)
            who = self._occupant_sender(room, occupant)
            author = _author(room, occupant, stanza, who)
            self._model(stanza, room.jid, True, who, occupant.jid, message_id, own, sender, author)
            return
        if sender.userhost() == self.jid.userhost() and sender.resource == self.jid.resource:
            return
        own = model.sender_id(stanza)
        if room is not None:
            if not sender.resource:
                return  # the room's own notices and forms: answering would speak in the room
            occupant = room.occupants.get(sender.resource) or Occupant(sender.resource)
            who = self._occupant_sender(room, occupant, private=sender.full())
            author = _author(room, occupant, stanza, who)
            self._model(stanza, sender.full(), False, who, occupant.jid, own, own, sender, author)
            return
        bare = sender.userhost()
        who = Sender(f"{self.source.name}/{sender.full()}", bare, sender.user or bare)
        self._model(stanza, sender.full(), False, who, bare, own, own, sender, bare)

    def _reflected(
        self,
        room: Room,
        nick: str,
        own: str | None,
        message_id: str | None,
        stanza: domish.Element,
    ) -> bool:
        """Whether a room message is the room reflecting the bot's own (its origin-id is
        one the bot sent, or it comes from the bot's nick); if so, learn the id the room
        gave it (its stanza-id) for the Response it was sent for."""
        ledger = self.source.ledger
        pending = ledger.pending.pop(own) if own else None
        if pending is None and nick != room.nick:
            return False
        if own is None:
            return True
        network = message_id or own
        if pending is not None:
            _room, response, text = pending
            self.source.remember_sent(response, network)
        elif st.child(stanza, "body") is not None and not _is_about_another(stanza):
            # Something the bot said without a Response (an admin's "say in").
            text = st.text_of(st.child(stanza, "body")) or ""
        else:
            return True  # its correction, retraction or reaction: no message of its own
        ledger.own[(room.jid, network)] = own
        ledger.saw(room.jid, network, own, "", f"{room.jid}/{nick}", text)
        return True

    def _room_notice(self, room: Room, stanza: domish.Element) -> None:
        """A message from the room itself: only an XEP-0425 moderation (a moderator took
        a message back) becomes an event."""
        retraction = model.retraction_of(stanza)
        if retraction is None or retraction.moderator is None:
            return
        retracted = retraction.id
        if retraction.origin:
            retracted = self.source.ledger.ids.get((room.jid, retracted)) or retracted
        moderator = st.parse_jid(retraction.moderator)
        nick = moderator.resource if moderator is not None and moderator.resource else ""
        occupant = room.occupants.get(nick) or Occupant(nick or room.jid)
        self._emit(
            EventType.DELETE,
            room.jid,
            True,
            self._occupant_sender(room, occupant),
            occupant.jid,
            refers_to=retracted,
            moderated=True,
            reason=retraction.reason,
        )

    def _model(
        self,
        stanza: domish.Element,
        channel: str,
        public: bool,
        who: Sender,
        jid: str | None,
        message_id: str | None,
        own: str | None,
        sender: JID,
        author: str,
    ) -> None:
        """A message from someone else in ``channel``: a reaction, a retraction, a
        correction, or text (with its reply and thread); ``message_id`` is its id there,
        ``own`` the id its sender gave it, ``author`` who they are as far as the
        network can tell (what a correction or retraction must match)."""
        ledger = self.source.ledger
        found = model.reactions_of(stanza)
        if found is not None:
            self._reactions(channel, public, who, jid, author, message_id, *found)
            return
        retraction = model.retraction_of(stanza)
        if retraction is not None and retraction.moderator is None:
            retracted: str | None = retraction.id
            if retraction.origin or not public:
                retracted = ledger.resolve(channel, retraction.id, author)
            elif (seen := ledger.seen.get((channel, retraction.id))) and seen.sender != author:
                retracted = None
            if retracted is None:
                self._forged("retraction", channel, who)
                return
            self._emit(EventType.DELETE, channel, public, who, jid, refers_to=retracted)
            return
        text = st.text_of(st.child(stanza, "body"))
        files = model.oob_of(stanza)
        if (not text or not text.strip()) and not files:
            return  # chat states, receipts, subjects without text
        text = text or ""
        reply = model.reply_of(stanza)
        if reply is not None:
            text = model.without_fallback(text, stanza, st.NS_REPLY)
            if not text.strip() and not files:
                return
        replaced = model.correction_of(stanza)
        if replaced is not None:
            if not text.strip():
                return  # a correction is text; files in one are not read
            original = ledger.resolve(channel, replaced, author)
            if original is None:
                self._forged("correction", channel, who)
                return
            ledger.saw(channel, original, None, author, sender.full(), text)
            self._emit(
                EventType.EDIT,
                channel,
                public,
                who,
                jid,
                text=text,
                message_id=original,
                refers_to=original,
                correction_id=message_id,
            )
            return
        if message_id is not None:
            ledger.saw(channel, message_id, own, author, sender.full(), text)
            # A correction names the stanza's id attribute, which may differ from its
            # origin-id.
            stanza_id = stanza.getAttribute("id")
            if stanza_id and stanza_id != own and len(stanza_id) <= model.MAX_ID:
                ledger.ids[(channel, stanza_id)] = message_id
        kind = EventType.MESSAGE
        if text.startswith("/me "):
            kind, text = EventType.ACTION, text[4:]
            if not text.strip() and not files:
                return
        self._emit(
            kind,
            channel,
            public,
            who,
            jid,
            text=model.caption(text, files) if files else text,
            message_id=message_id,
            reply_to=reply.id if reply is not None else None,
            thread_id=model.thread_of(stanza),
            attachments=files,
        )

    def _reactions(
        self,
        channel: str,
        public: bool,
        who: Sender,
        jid: str | None,
        author: str,
        message_id: str | None,
        reacted: str,
        keys: frozenset[str],
    ) -> None:
        """A sender's reactions to ``reacted`` now: one event per key added, and one
        (``removed``) per key no longer there."""
        ledger = self.source.ledger
        key = (channel, author, reacted)
        before = ledger.reactions.get(key) or frozenset()
        ledger.reactions[key] = keys
        for added in sorted(keys - before):
            self._emit(
                EventType.REACTION,
                channel,
                public,
                who,
                jid,
                message_id=message_id,
                refers_to=reacted,
                reaction=added,
                removed=False,
            )
        for removed in sorted(before - keys):
            self._emit(
                EventType.REACTION,
                channel,
                public,
                who,
                jid,
                message_id=message_id,
                refers_to=reacted,
                reaction=removed,
                removed=True,
            )

    def _forged(self, what: str, channel: str, who: Sender) -> None:
        self.log.info(
            "{source}: ignored a {what} in {channel} by {who} of someone else's message",
            source=self.source.name,
            what=what,
            channel=channel,
            who=who.id,
        )

    def _occupant_sender(
        self, room: Room, occupant: Occupant, private: str | None = None
    ) -> Sender:
        place = private or f"{room.jid}/{occupant.nick}"
        return Sender(f"{self.source.name}/{place}", occupant.jid or place, occupant.nick)

    def _emit(
        self,
        kind: str,
        channel: str,
        public: bool,
        sender: Sender,
        jid: str | None,
        text: str | None = None,
        message_id: str | None = None,
        reply_to: str | None = None,
        thread_id: str | None = None,
        refers_to: str | None = None,
        reaction: str | None = None,
        attachments: tuple[Attachment, ...] = (),
        **data: Any,
    ) -> None:
        written = kind in EventType.WRITTEN
        event = Event(
            source=self.source.name,
            type=kind,
            sender=sender,
            channel=channel,
            public=public,
            addressed=not public and written,
            message=Message(text, attachments=attachments) if text is not None else None,
            time=self.now(),
            message_id=message_id,
            reply_to=reply_to,
            thread_id=thread_id,
            refers_to=refers_to,
            reaction=reaction,
            data={"jid": jid, **data},
        )
        self.source.emit(event)

    def _invite(self, sender: JID, stanza: domish.Element) -> bool:
        room_jid = None
        by = None
        password = None
        x = st.child(stanza, "x", st.NS_MUC_USER)
        invite = st.child(x, "invite", st.NS_MUC_USER) if x is not None else None
        if invite is not None:
            room_jid = sender.userhost()
            by_jid = st.parse_jid(invite.getAttribute("from"))
            by = by_jid.userhost() if by_jid is not None else None
            password = st.text_of(st.child(x, "password", st.NS_MUC_USER)) if x else None
        else:
            direct = st.child(stanza, "x", st.NS_CONFERENCE)
            if direct is None:
                return False
            found = st.parse_jid(direct.getAttribute("jid"))
            room_jid = found.userhost() if found is not None and found.user else None
            by = sender.userhost()
            password = direct.getAttribute("password")
        if room_jid is None or by is None:
            return True
        event = Event(
            source=self.source.name,
            type=EventType.INVITE,
            sender=Sender(f"{self.source.name}/{by}", by, by.split("@", 1)[0]),
            channel=by,
            public=False,
            addressed=True,
            time=self.now(),
            data={"channel": room_jid, "jid": by},
        )
        self.source.emit(event)
        self.source.invited(room_jid, by, password)
        return True

    # -- events ---------------------------------------------------------------------------

    def _state(self, room: Room, occupant: Occupant, kind: str, **data: Any) -> None:
        event = Event(
            source=self.source.name,
            type=EventType.STATE,
            sender=self._occupant_sender(room, occupant),
            channel=room.jid,
            public=True,
            time=self.now(),
            data={"kind": kind, "jid": occupant.jid, "role": occupant.role, **data},
        )
        self.source.emit(event)

    def _source_event(self, state: str, room: str | None = None, **data: Any) -> None:
        event = Event(
            source=self.source.name,
            type=EventType.SOURCE,
            channel=room,
            time=self.now(),
            data={"state": state, **({"channel": room} if room else {}), **data},
        )
        self.source.emit(event)

    def members(self, room_jid: str) -> dict[str, str]:
        room = self.rooms.get(room_jid)
        if room is None or not room.joined:
            return {}
        found = {nick: ROLE_PREFIX.get(o.role, "") for nick, o in room.occupants.items()}
        found[room.nick] = found.get(room.nick, "")
        return found


def _author(room: Room, occupant: Occupant, stanza: domish.Element, who: Sender) -> str:
    """Who a room message is from, as far as the room can tell: its XEP-0421
    occupant-id (the same person under any nick, and never a newcomer who took their
    nick) where the room gives them, else the sender's id (real JID or room/nick)."""
    if room.occupant_ids:
        found = model.occupant_id(stanza) or occupant.occupant_id
        if found:
            return f"occupant-id:{found}"
    return who.id


def _is_about_another(stanza: domish.Element) -> bool:
    """Whether a message corrects, retracts or reacts to another one."""
    return (
        model.correction_of(stanza) is not None
        or model.retraction_of(stanza) is not None
        or model.reactions_of(stanza) is not None
    )


def _reason(item: domish.Element | None) -> domish.Element | None:
    return None if item is None else st.child(item, "reason", st.NS_MUC_USER)


def _shorten(element: domish.Element) -> str:
    try:
        text = element.toXml()
    except Exception:
        return "(unprintable)"
    return text if len(text) < 500 else text[:500] + "..."
