"""botcore: a chat-bot framework on Twisted.

The core knows nothing about particular networks or features; README.rst, "How botcore
is built", describes its layers."""

__version__ = "0.1.0"
