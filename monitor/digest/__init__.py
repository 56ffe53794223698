"""Saved searches and daily digest e-mails: subscriptions with double opt-in, sent exactly once."""
