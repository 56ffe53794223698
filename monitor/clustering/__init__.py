"""Copies and stories: near-duplicate detection (copies), story features and index (stories), the incremental engine, its database side (store), offline and recluster runs."""
