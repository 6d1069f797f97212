"""Matrix message content both ways: what a room event's ``content`` says (its text with
HTML turned into plain text and reply fallbacks taken off, its files, its reply, thread,
edit, reaction and redaction targets), and the content of what the bot sends. Pure
functions."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, unquote

from botcore.event import Attachment

#: The msgtypes whose body is text a person typed, and the event type each becomes.
TEXT_TYPES = {"m.text": "message", "m.emote": "action", "m.notice": "notice"}
#: The msgtypes of a file (its ``url`` an ``mxc://`` URI; its body a name or a caption).
FILE_TYPES = frozenset({"m.image", "m.file", "m.video", "m.audio"})
#: The unauthenticated download URL of Matrix media (what the ``media_url`` option of
#: the Matrix source defaults to).
MEDIA_URL = "{homeserver}/_matrix/media/v3/download/{server}/{media_id}"
_MXC = re.compile(r"mxc://([A-Za-z0-9.:\[\]-]{1,255})/([A-Za-z0-9_-]{1,255})")
HTML = "org.matrix.custom.html"
_PILL = re.compile(r"^https://matrix\.to/#/([@!#][^/?]+)")
_BLOCKS = frozenset({"p", "div", "li", "tr", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5"})


class _Text(HTMLParser):
    """HTML to plain text: line breaks for <br> and block ends, <mx-reply> (a reply's
    quoted fallback) left out, links kept as their text (a mention pill is the name)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        #: The open link's target and where its text starts in ``parts``.
        self._link: tuple[str, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS and not self._skip and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")
        if tag == "a" and not self._skip:
            href = dict(attrs).get("href") or ""
            if href.startswith(("http://", "https://")) and not _PILL.match(href):
                self._link = (href, len(self.parts))
        if tag == "mx-reply":
            self._skip += 1
        elif tag == "br" and not self._skip:
            self.parts.append("\n")
        elif tag == "li" and not self._skip:
            self.parts.append("* ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._link is not None:
            # A link's target is kept where its text does not say it: on a network
            # without HTML, "the docs" alone would lose where they are.
            href, start = self._link
            self._link = None
            said = "".join(self.parts[start:]).strip()
            if said != href and said.rstrip("/") != href.rstrip("/"):
                self.parts.append(f" ({href})" if said else href)
        if tag == "mx-reply":
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS and not self._skip:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The plain text of a message's HTML body."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = "".join(parser.parts).split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def mentioned_users(markup: str) -> list[str]:
    """The user ids that the HTML's mention pills link to."""
    found: list[str] = []

    class _Pills(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag != "a":
                return
            href = unquote(dict(attrs).get("href") or "")
            match = _PILL.match(href)
            if match and match.group(1).startswith("@"):
                found.append(match.group(1))

    parser = _Pills()
    parser.feed(markup)
    parser.close()
    return found


def strip_reply_fallback(body: str) -> str:
    """A plain body without the ``> <@user> quoted`` lines a reply starts with."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and not lines[index].strip():
        index += 1
    return "\n".join(lines[index:])


@dataclass
class Incoming:
    """What one room event's content means to the bot."""

    #: message, action, notice, edit, reaction or delete; None for nothing to process.
    kind: str | None
    text: str = ""
    reply_to: str | None = None
    thread_id: str | None = None
    refers_to: str | None = None
    key: str | None = None
    #: For an edit, the new content's type (message, action or notice).
    edited_kind: str | None = None
    #: User ids mentioned with pills or ``m.mentions``.
    mentions: tuple[str, ...] = ()
    #: The files it carries (their URLs still ``mxc://``: see `media_url`).
    attachments: tuple[Attachment, ...] = ()


def media_url(mxc: str, homeserver: str, template: str = MEDIA_URL, name: str = "") -> str | None:
    """The HTTP URL of the media ``mxc`` (``mxc://server/id``) by ``template`` (with
    ``{homeserver}``, ``{server}``, ``{media_id}`` and ``{name}``, the file's name
    quoted for a path), or None for what is not an ``mxc://`` URI."""
    found = _MXC.fullmatch(mxc)
    if found is None:
        return None
    return template.format(
        homeserver=homeserver.rstrip("/"),
        server=found.group(1),
        media_id=found.group(2),
        name=quote(name or found.group(2), safe=""),
    )


def _file_of(content: dict[str, Any]) -> tuple[str, tuple[Attachment, ...]]:
    """The caption and the attachment of a file message (``m.image``...). The body is
    its name unless ``filename`` differs from it (then the body is a caption). An
    encrypted file (``file`` rather than ``url``) is only named: its URL would give
    ciphertext to anyone who is not in the room."""
    body = content.get("body")
    body = body if isinstance(body, str) else ""
    filename = content.get("filename")
    name = filename if isinstance(filename, str) and filename else body
    caption = _text_of(content) if isinstance(filename, str) and filename != body else ""
    info = content.get("info")
    info = info if isinstance(info, dict) else {}
    mimetype = info.get("mimetype")
    size = info.get("size")
    url = content.get("url")
    if isinstance(content.get("file"), dict):
        named = f"{name or 'a file'} (an encrypted file, not shown here)"
        return (f"{caption}\n{named}" if caption else named), ()
    if not isinstance(url, str) or _MXC.fullmatch(url) is None:
        return caption or name, ()  # no file to link: what it is called, at least
    attachment = Attachment(
        url,
        " ".join(name.split())[:255],
        mimetype if isinstance(mimetype, str) and mimetype else None,
        size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
    )
    return caption, (attachment,)


def _text_of(content: dict[str, Any]) -> str:
    body = content.get("body")
    body = body if isinstance(body, str) else ""
    formatted = content.get("formatted_body")
    if content.get("format") == HTML and isinstance(formatted, str) and formatted.strip():
        text = html_to_text(formatted)
        if text.strip():
            return text
    return body


def _mentions(content: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    declared = content.get("m.mentions")
    if isinstance(declared, dict) and isinstance(declared.get("user_ids"), list):
        found.extend(u for u in declared["user_ids"] if isinstance(u, str))
    formatted = content.get("formatted_body")
    if content.get("format") == HTML and isinstance(formatted, str):
        found.extend(mentioned_users(formatted))
    return tuple(dict.fromkeys(found))


def parse_event(raw: dict[str, Any]) -> Incoming:
    """Read a room event (the JSON dict, decrypted where it was encrypted)."""
    event_type = raw.get("type")
    content = raw.get("content")
    if not isinstance(content, dict):
        return Incoming(None)
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, dict) else {}
    rel_type = relates.get("rel_type")
    target = relates.get("event_id") if isinstance(relates.get("event_id"), str) else None
    if event_type == "m.reaction":
        key = relates.get("key")
        if rel_type == "m.annotation" and target and isinstance(key, str) and key:
            return Incoming("reaction", refers_to=target, key=key)
        return Incoming(None)
    if event_type == "m.room.redaction":
        redacts = raw.get("redacts") or content.get("redacts")
        return (
            Incoming("delete", refers_to=redacts) if isinstance(redacts, str) else Incoming(None)
        )
    if event_type != "m.room.message":
        return Incoming(None)
    if rel_type == "m.replace" and target:
        new = content.get("m.new_content")
        if not isinstance(new, dict):
            return Incoming(None)
        kind = TEXT_TYPES.get(str(new.get("msgtype")))
        if kind is None:
            return Incoming(None)
        return Incoming(
            "edit", _text_of(new), refers_to=target, edited_kind=kind, mentions=_mentions(new)
        )
    msgtype = str(content.get("msgtype"))
    kind = TEXT_TYPES.get(msgtype) or ("message" if msgtype in FILE_TYPES else None)
    if kind is None:
        return Incoming(None)
    reply = relates.get("m.in_reply_to")
    reply_to = reply.get("event_id") if isinstance(reply, dict) else None
    reply_to = reply_to if isinstance(reply_to, str) else None
    thread = target if rel_type == "m.thread" else None
    if thread is not None and relates.get("is_falling_back"):
        reply_to = None  # a thread message's reply marker only points at the thread's last
    attachments: tuple[Attachment, ...] = ()
    if msgtype in FILE_TYPES:
        text, attachments = _file_of(content)
    else:
        text = _text_of(content)
        if reply_to is not None and content.get("format") != HTML:
            text = strip_reply_fallback(text)
    return Incoming(
        kind, text, reply_to, thread, mentions=_mentions(content), attachments=attachments
    )


# -- outgoing --------------------------------------------------------------------------


def message_content(
    text: str,
    msgtype: str = "m.text",
    *,
    reply_to: str | None = None,
    thread_id: str | None = None,
    mention: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The content of a message saying ``text``: a reply (``m.in_reply_to``), in a thread
    (``m.thread``, with the reply fallback to its root or ``reply_to``), and with
    ``mention`` (user id, the name the text starts with) made a pill."""
    content: dict[str, Any] = {"msgtype": msgtype, "body": text}
    if mention is not None and text.startswith(mention[1]):
        user_id, name = mention
        link = f'<a href="https://matrix.to/#/{html.escape(user_id)}">{html.escape(name)}</a>'
        rest = html.escape(text[len(name) :]).replace("\n", "<br>")
        content["format"] = HTML
        content["formatted_body"] = link + rest
        content["m.mentions"] = {"user_ids": [user_id]}
    if thread_id is not None:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_id,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or thread_id},
        }
    elif reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def edit_content(text: str, target: str, msgtype: str = "m.text") -> dict[str, Any]:
    """The content replacing the message ``target`` by ``text`` (``m.replace``)."""
    return {
        "msgtype": msgtype,
        "body": f"* {text}",
        "m.new_content": {"msgtype": msgtype, "body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }


def reaction_content(target: str, key: str) -> dict[str, Any]:
    """The content of an ``m.reaction`` with ``key`` to the message ``target``."""
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
