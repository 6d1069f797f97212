"""The core's message model on XMPP: message ids (XEP-0359), replies (XEP-0461), threads,
corrections (XEP-0308), reactions (XEP-0444), retractions (XEP-0424, XEP-0425 read
only) and files by URL (XEP-0066 out-of-band data, as XEP-0363 uploads are shared):
reading them from stanzas, defensively, and adding them to the bot's own.

Which id names a message depends on where it was said: in a room, the room's
``<stanza-id by='room'>`` (replies, reactions and retractions refer to that); in a
one-to-one chat the sender's ``<origin-id>``, else the stanza's ``id``. Corrections
always name the original stanza's own id, which in a room is not the room's: the
`Ledger` remembers which is which."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from twisted.words.xish import domish

from botcore.event import Attachment
from botcore.sources.xmpp import stanzas as st

if TYPE_CHECKING:
    from botcore.event import Response

#: Ids longer than this are not ids (a hostile sender's megabyte of "id").
MAX_ID = 256
#: Most reaction keys read from one stanza, and the longest key (in characters).
MAX_REACTIONS = 20
MAX_KEY = 32
#: The longest thread id kept.
MAX_THREAD = 256
#: How many characters of the message replied to are quoted in the fallback body.
QUOTE = 80
#: Most out-of-band files read from one stanza, and the longest URL and description.
MAX_OOB = 10
MAX_URL = 2048
MAX_DESC = 255
#: The body of a retraction, for clients that know none (XEP-0424's suggested text).
RETRACTION_FALLBACK = (
    "This person attempted to retract a previous message, but it's unsupported by your client."
)

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """A mapping that forgets its least recently written entries beyond ``size``."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


def new_id() -> str:
    """A fresh, unguessable id for a stanza the bot sends."""
    return secrets.token_urlsafe(12)


def _id(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_ID else None


def _same_jid(a: str | None, b: str) -> bool:
    found = st.parse_jid(a)
    return found is not None and found.full().lower() == b.lower()


# -- reading --------------------------------------------------------------------------------


def stanza_id(stanza: domish.Element, by: str) -> str | None:
    """The XEP-0359 ``<stanza-id>`` that ``by`` (a room's bare JID) gave the stanza; one
    claiming another ``by`` is not trusted (anyone can write one)."""
    for found in stanza.elements(st.NS_SID, "stanza-id"):
        if _same_jid(found.getAttribute("by"), by):
            return _id(found.getAttribute("id"))
    return None


def origin_id(stanza: domish.Element) -> str | None:
    """The sender's XEP-0359 ``<origin-id>``, if any."""
    found = st.child(stanza, "origin-id", st.NS_SID)
    return _id(found.getAttribute("id")) if found is not None else None


def occupant_id(stanza: domish.Element) -> str | None:
    """The XEP-0421 ``<occupant-id>`` a room put on a presence or message."""
    found = st.child(stanza, "occupant-id", st.NS_OCCUPANT_ID)
    return _id(found.getAttribute("id")) if found is not None else None


def sender_id(stanza: domish.Element) -> str | None:
    """The id the sender gave: its origin-id, else the stanza's ``id`` attribute."""
    return origin_id(stanza) or _id(stanza.getAttribute("id"))


@dataclass(frozen=True)
class Reply:
    """An XEP-0461 ``<reply>``: the id of the message answered and its author (if said)."""

    id: str
    to: str | None


def reply_of(stanza: domish.Element) -> Reply | None:
    found = st.child(stanza, "reply", st.NS_REPLY)
    if found is None:
        return None
    replied = _id(found.getAttribute("id"))
    if replied is None:
        return None
    to = st.parse_jid(found.getAttribute("to"))
    return Reply(replied, to.full() if to is not None else None)


def thread_of(stanza: domish.Element) -> str | None:
    """The ``<thread>`` the message belongs to."""
    found = st.child(stanza, "thread")
    text = st.text_of(found)
    if not text or not text.strip() or len(text) > MAX_THREAD:
        return None
    return text.strip()


def correction_of(stanza: domish.Element) -> str | None:
    """The id of the message an XEP-0308 correction replaces."""
    found = st.child(stanza, "replace", st.NS_CORRECT)
    return _id(found.getAttribute("id")) if found is not None else None


def reactions_of(stanza: domish.Element) -> tuple[str, frozenset[str]] | None:
    """An XEP-0444 ``<reactions>``: the id reacted to and the sender's whole set of
    reactions to it now (an empty set takes every earlier one back)."""
    found = st.child(stanza, "reactions", st.NS_REACTIONS)
    if found is None:
        return None
    reacted = _id(found.getAttribute("id"))
    if reacted is None:
        return None
    keys = []
    for reaction in found.elements(st.NS_REACTIONS, "reaction"):
        key = str(reaction).strip()
        if key and len(key) <= MAX_KEY and key not in keys:
            keys.append(key)
        if len(keys) >= MAX_REACTIONS:
            break
    return reacted, frozenset(keys)


@dataclass(frozen=True)
class Retraction:
    """A retraction: of the message ``id``, by its author, or (``moderator`` set) by a
    room's moderator (XEP-0425). ``origin`` when ``id`` is the author's own id (the
    legacy XEP-0424 form, which names the origin-id), not the room's."""

    id: str
    origin: bool = False
    moderator: str | None = None
    reason: str | None = None


def retraction_of(stanza: domish.Element) -> Retraction | None:
    """An XEP-0424 retraction (``urn:xmpp:message-retract:1``, or the older
    ``apply-to``/``retract:0`` form), or an XEP-0425 moderation announced by a room."""
    found = st.child(stanza, "retract", st.NS_RETRACT)
    if found is not None:
        retracted = _id(found.getAttribute("id"))
        if retracted is None:
            return None
        moderated = st.child(found, "moderated", st.NS_MODERATE)
        if moderated is None:
            return Retraction(retracted)
        by = st.parse_jid(moderated.getAttribute("by"))
        reason = st.text_of(st.child(found, "reason"))
        return Retraction(retracted, moderator=by.full() if by else "", reason=reason)
    apply_to = st.child(stanza, "apply-to", st.NS_FASTEN)
    if apply_to is None:
        return None
    retracted = _id(apply_to.getAttribute("id"))
    if retracted is None:
        return None
    if st.child(apply_to, "retract", st.NS_RETRACT_LEGACY) is not None:
        return Retraction(retracted, origin=True)
    moderated = st.child(apply_to, "moderated", st.NS_MODERATE_LEGACY)
    if moderated is not None and st.child(moderated, "retract", st.NS_RETRACT_LEGACY):
        by = st.parse_jid(moderated.getAttribute("by"))
        reason = st.text_of(st.child(moderated, "reason"))
        return Retraction(retracted, moderator=by.full() if by else "", reason=reason)
    return None


def without_fallback(text: str, stanza: domish.Element, purpose: str) -> str:
    """``text`` (the stanza's body) without what an XEP-0428 ``<fallback>`` for
    ``purpose`` (a namespace) marks as fallback: ranges counted in characters; a
    fallback with no range is the whole body."""
    cuts: list[tuple[int, int]] = []
    for fallback in stanza.elements(st.NS_FALLBACK, "fallback"):
        if fallback.getAttribute("for") != purpose:
            continue
        ranges = [b for b in fallback.elements(st.NS_FALLBACK, "body")]
        if not ranges:
            return ""
        for body in ranges:
            try:
                start = int(body.getAttribute("start", "0"))
                end = int(body.getAttribute("end", str(len(text))))
            except ValueError:
                continue
            if 0 <= start < end <= len(text):
                cuts.append((start, end))
    for start, end in sorted(cuts, reverse=True):
        text = text[:start] + text[end:]
    return text


def oob_of(stanza: domish.Element) -> tuple[Attachment, ...]:
    """The files an XEP-0066 ``<x xmlns='jabber:x:oob'><url/><desc/></x>`` links (only
    http(s) URLs: an ``aesgcm://`` one is an OMEMO-encrypted file no one else can open);
    each named by its description, else by the URL's last path segment."""
    found: list[Attachment] = []
    for x in stanza.elements(st.NS_OOB, "x"):
        url = (st.text_of(st.child(x, "url", st.NS_OOB)) or "").strip()
        if not url.startswith(("http://", "https://")) or len(url) > MAX_URL or " " in url:
            continue
        desc = " ".join((st.text_of(st.child(x, "desc", st.NS_OOB)) or "").split())
        name = desc[:MAX_DESC] or unquote(urlsplit(url).path.rsplit("/", 1)[-1])[:MAX_DESC]
        found.append(Attachment(url, name))
        if len(found) == MAX_OOB:
            break
    return tuple(found)


def caption(text: str, attachments: tuple[Attachment, ...]) -> str:
    """A body without the lines that only repeat the attachments' URLs (XEP-0363 clients
    send the URL as the body, for clients that know no ``<x>``): the text said with
    them, empty when there was none."""
    urls = {attachment.url for attachment in attachments}
    return "\n".join(line for line in text.split("\n") if line.strip() not in urls).strip("\n")


# -- writing --------------------------------------------------------------------------------


def set_id(stanza: domish.Element, value: str) -> None:
    """Give an outgoing stanza ``value`` as its id and as its XEP-0359 origin-id."""
    stanza["id"] = value
    stanza.addElement((st.NS_SID, "origin-id"))["id"] = value


def add_reply(stanza: domish.Element, replied: str, to: str | None, quote: str | None) -> None:
    """Mark ``stanza`` (which has a body) as an XEP-0461 reply to ``replied`` by ``to``;
    with ``quote`` (the text replied to), its first line is quoted ahead of the body as an
    XEP-0428 fallback for clients without replies."""
    reply = stanza.addElement((st.NS_REPLY, "reply"))
    reply["id"] = replied
    if to:
        reply["to"] = to
    body = st.child(stanza, "body")
    if not quote or body is None:
        return
    first = st.xml_safe(quote.strip().split("\n", 1)[0])
    if len(first) > QUOTE:
        first = first[: QUOTE - 1] + "\N{HORIZONTAL ELLIPSIS}"
    prefix = f"> {first}\n"
    text = str(body)
    body.children = [prefix + text]
    fallback = stanza.addElement((st.NS_FALLBACK, "fallback"))
    fallback["for"] = st.NS_REPLY
    marked = fallback.addElement("body")
    marked["start"] = "0"
    marked["end"] = str(len(prefix))


def add_oob(stanza: domish.Element, attachment: Attachment) -> None:
    """Link ``attachment`` from ``stanza`` (XEP-0066), its name as the description."""
    x = stanza.addElement((st.NS_OOB, "x"))
    x.addElement("url", content=st.xml_safe(attachment.url))
    if attachment.name:
        x.addElement("desc", content=st.xml_safe(attachment.name))


def add_thread(stanza: domish.Element, thread: str) -> None:
    stanza.addElement("thread", content=st.xml_safe(thread))


def add_replace(stanza: domish.Element, replaced: str) -> None:
    stanza.addElement((st.NS_CORRECT, "replace"))["id"] = replaced


def reactions(to: str, kind: str, reacted: str, keys: list[str]) -> domish.Element:
    """An XEP-0444 message setting the bot's reactions to ``reacted`` to ``keys``."""
    stanza = domish.Element((st.NS_CLIENT, "message"))
    stanza["to"] = to
    stanza["type"] = kind
    set_id(stanza, new_id())
    found = stanza.addElement((st.NS_REACTIONS, "reactions"))
    found["id"] = reacted
    for key in keys:
        found.addElement("reaction", content=st.xml_safe(key))
    stanza.addElement((st.NS_HINTS, "store"))
    return stanza


def retraction(to: str, kind: str, retracted: str, origin: str) -> domish.Element:
    """An XEP-0424 retraction of the bot's message: ``retracted`` is its id where it was
    said (in a room the room's stanza-id), ``origin`` its own id (for the older form)."""
    stanza = domish.Element((st.NS_CLIENT, "message"))
    stanza["to"] = to
    stanza["type"] = kind
    set_id(stanza, new_id())
    stanza.addElement((st.NS_RETRACT, "retract"))["id"] = retracted
    legacy = stanza.addElement((st.NS_FASTEN, "apply-to"))
    legacy["id"] = origin
    legacy.addElement((st.NS_RETRACT_LEGACY, "retract"))
    fallback = stanza.addElement((st.NS_FALLBACK, "fallback"))
    fallback["for"] = st.NS_RETRACT
    stanza.addElement("body", content=RETRACTION_FALLBACK)
    stanza.addElement((st.NS_HINTS, "store"))
    return stanza


# -- what the source remembers --------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """A message seen in a conversation: its author (the JID a reply names) and text."""

    author: str
    sender: str
    text: str


class Ledger:
    """What the source remembers of recent messages, bounded, per conversation (a room's
    bare JID or a person's full JID), across reconnections. Reactor thread only."""

    def __init__(self, size: int = 2000) -> None:
        #: (conversation, id) -> who said it and what, for replies' ``to`` and quotes.
        self.seen: Bounded[tuple[str, str], Seen] = Bounded(size)
        #: (conversation, the sender's own id) -> the message's id there (in a room the
        #: room's), so that a correction, which names the former, finds the latter.
        self.ids: Bounded[tuple[str, str], str] = Bounded(size)
        #: (conversation, id) -> the bot's own id of its message there (for its
        #: corrections and retractions).
        self.own: Bounded[tuple[str, str], str] = Bounded(size)
        #: The bot's room messages awaiting the room's reflection: own id -> (the room,
        #: the Response it was sent for, its text).
        self.pending: Bounded[str, tuple[str, Response, str]] = Bounded(size)
        #: (conversation, sender, id) -> that sender's reactions to it (XEP-0444 sends
        #: the whole set each time, so what was taken back is what is missing).
        self.reactions: Bounded[tuple[str, str, str], frozenset[str]] = Bounded(size)
        #: (conversation, id) -> the bot's own reactions to it, in order.
        self.my_reactions: Bounded[tuple[str, str], tuple[str, ...]] = Bounded(size)

    def saw(
        self, channel: str, message: str, own: str | None, sender: str, author: str, text: str
    ) -> None:
        """Record a message ``message`` in ``channel`` whose sender gave it the id ``own``."""
        self.seen[(channel, message)] = Seen(author, sender, text)
        if own:
            self.ids[(channel, own)] = message

    def resolve(self, channel: str, own: str, sender: str) -> str | None:
        """The id in ``channel`` of the message its sender called ``own`` (``own`` itself
        when not remembered), or None when it is remembered as someone else's."""
        message = self.ids.get((channel, own)) or own
        seen = self.seen.get((channel, message))
        if seen is not None and seen.sender != sender:
            return None
        return message
