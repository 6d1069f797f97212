"""botcore: a chat-bot framework on Twisted.

The core knows nothing about particular networks or features; see DESIGN.md."""

__version__ = "0.1.0"
