"""Reading and building XMPP stanzas defensively: every helper here accepts whatever a
server or a hostile client sends and answers None (or nothing) for what does not fit."""

from __future__ import annotations

import re

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

NS_CLIENT = "jabber:client"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DELAY = "urn:xmpp:delay"
NS_DELAY_LEGACY = "jabber:x:delay"
NS_PING = "urn:xmpp:ping"
NS_ROSTER = "jabber:iq:roster"
NS_CONFERENCE = "jabber:x:conference"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"

#: Characters XML 1.0 cannot carry at all (a stanza with one would end the stream).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def parse_jid(text: str | None) -> JID | None:
    """The JID written ``text``, or None when it is missing or malformed."""
    if not text or len(text) > 3071:
        return None
    try:
        return JID(text)
    except (InvalidFormat, UnicodeError, ValueError):
        return None


def child(element: domish.Element, name: str, uri: str | None = None) -> domish.Element | None:
    """The first child element called ``name`` (in namespace ``uri`` when given)."""
    for found in element.elements():
        if found.name == name and (uri is None or found.uri == uri):
            return found
    return None


def text_of(element: domish.Element | None) -> str | None:
    """An element's text (None for no element)."""
    return None if element is None else str(element)


def status_codes(element: domish.Element) -> set[str]:
    """The MUC status codes (``110`` self, ``303`` nick change, ``307`` kick...)."""
    codes = set()
    for x in element.elements(NS_MUC_USER, "x"):
        for status in x.elements(NS_MUC_USER, "status"):
            code = status.getAttribute("code")
            if code:
                codes.add(code)
    return codes


def muc_item(element: domish.Element) -> domish.Element | None:
    """The ``<x xmlns=muc#user><item/>`` of an occupant's presence, if any."""
    x = child(element, "x", NS_MUC_USER)
    return None if x is None else child(x, "item", NS_MUC_USER)


def is_delayed(element: domish.Element) -> bool:
    """Whether a stanza is a replay (XEP-0203 or the legacy XEP-0091 delay)."""
    return (
        child(element, "delay", NS_DELAY) is not None
        or child(element, "x", NS_DELAY_LEGACY) is not None
    )


def error_condition(element: domish.Element) -> str | None:
    """The defined condition of a stanza error (``conflict``, ``not-authorized``...)."""
    error = child(element, "error")
    if error is None:
        return None
    for found in error.elements():
        if found.uri == NS_STANZAS and found.name != "text":
            return str(found.name)
    return None


def message(to: str, body: str, kind: str) -> domish.Element:
    """A ``<message>`` with a body."""
    stanza = domish.Element((NS_CLIENT, "message"))
    stanza["to"] = to
    stanza["type"] = kind
    stanza.addElement("body", content=xml_safe(body))
    return stanza


def presence(to: str | None = None, kind: str | None = None) -> domish.Element:
    """A ``<presence>`` (available unless ``kind`` says otherwise)."""
    stanza = domish.Element((NS_CLIENT, "presence"))
    if to is not None:
        stanza["to"] = to
    if kind is not None:
        stanza["type"] = kind
    return stanza


def join_presence(room: str, nick: str, password: str | None) -> domish.Element:
    """The presence that joins ``room`` as ``nick``, asking for no history."""
    stanza = presence(f"{room}/{nick}")
    x = stanza.addElement((NS_MUC, "x"))
    x.addElement("history")["maxstanzas"] = "0"
    if password:
        x.addElement("password", content=password)
    return stanza


def reply_error(stanza: domish.Element, condition: str, kind: str = "cancel") -> domish.Element:
    """The error answer to an iq (``service-unavailable`` for what the bot does not do)."""
    answer = domish.Element((NS_CLIENT, stanza.name))
    if stanza.getAttribute("from"):
        answer["to"] = stanza["from"]
    if stanza.getAttribute("id") is not None:
        answer["id"] = stanza["id"]
    answer["type"] = "error"
    error = answer.addElement("error")
    error["type"] = kind
    error.addElement((NS_STANZAS, condition))
    return answer


# -- the message model's namespaces (see botcore.sources.xmpp.model) ------------------------------

NS_SID = "urn:xmpp:sid:0"
NS_REPLY = "urn:xmpp:reply:0"
NS_FALLBACK = "urn:xmpp:fallback:0"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_RETRACT_LEGACY = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_MODERATE = "urn:xmpp:message-moderate:1"
NS_MODERATE_LEGACY = "urn:xmpp:message-moderate:0"
NS_HINTS = "urn:xmpp:hints"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_OOB = "jabber:x:oob"

#: What the bot says it understands, when asked (XEP-0030): clients look for these
#: before offering to react, correct or retract in a chat with it.
FEATURES = (
    NS_DISCO_INFO,
    NS_MUC,
    NS_PING,
    NS_SID,
    NS_REPLY,
    NS_CORRECT,
    NS_REACTIONS,
    NS_RETRACT,
    NS_OOB,
)
