"""What the HTTP front door shares with plugins and the setup command: API tokens that
belong to accounts, and the webhook routes plugins declare."""
