"""Accounts: who a sender is (identities linked to accounts), what they may do
(permissions), and keeping the secrets they type out of everything else."""
