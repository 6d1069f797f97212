"""Text cut to a network's limits: shared by the sources whose messages have a size in
bytes (IRC's 512-byte lines, XMPP servers' stanza limits)."""

from __future__ import annotations


def split_text(text: str, budget: int) -> list[str]:
    """Split ``text`` into pieces of at most ``budget`` UTF-8 bytes each, cutting only on
    character boundaries and, where one falls in the second half of a piece, at a space
    (which is dropped). Empty pieces are left out."""
    if budget < 4:
        raise ValueError("a piece must hold at least one character (4 bytes)")
    data = text.encode("utf-8")
    pieces: list[str] = []
    while len(data) > budget:
        cut = budget
        while (data[cut] & 0xC0) == 0x80:  # never cut inside a multi-byte character
            cut -= 1
        space = data.rfind(b" ", budget // 2, cut + 1)
        if space > 0:
            piece, data = data[:space], data[space + 1 :]
        else:
            piece, data = data[:cut], data[cut:]
        if piece.strip(b" "):
            pieces.append(piece.decode("utf-8"))
    if data.strip(b" "):
        pieces.append(data.decode("utf-8"))
    return pieces
