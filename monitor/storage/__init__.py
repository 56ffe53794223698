"""The source of truth: database connection and migrations (db), models, the article store (articles) and the index outbox (outbox)."""
