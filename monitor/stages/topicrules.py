"""Topic rules as typed data: what feeds.yaml `topics:` compiles to, and what the tagger reads.

Kept apart from the YAML loader (monitor/config/topicsfile.py) so the tagging stage stays pure:
it imports nothing from config.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TermGroup:
    """Alternatives counted together: a requirement (`require_any`) or a scored signal (`signals`).

    `near`: when given, an occurrence only counts if one of these words/phrases occurs within
    `window` words of it (same field) — "aid" near "Ukraine", not anywhere in a long article.
    `weight` is what each counted occurrence adds to the score when the group is a signal (may be
    negative); `max_count` caps how many occurrences a signal counts (0 = no cap).
    """

    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    min_count: int = 1
    near: tuple[str, ...] = ()
    window: int = 0
    weight: float = 1.0
    max_count: int = 0
    name: str = ""


@dataclass(frozen=True)
class TopicRule:
    """One topic's matching rule; see the comment block above `topics:` in feeds.yaml."""

    name: str
    label: str
    include_terms: tuple[str, ...] = ()
    include_phrases: tuple[str, ...] = ()
    exclude_terms: tuple[str, ...] = ()
    exclude_phrases: tuple[str, ...] = ()
    require_any: tuple[TermGroup, ...] = ()
    min_score: float = 3
    title_weight: int = 3
    # Occurrences of an include term inside one of these phrases do not count ("5.56 NATO").
    ignore_phrases: tuple[str, ...] = ()
    signals: tuple[TermGroup, ...] = ()
    # The first `lead_words` words of the text score `lead_weight` per include hit (0 = off).
    lead_words: int = 0
    lead_weight: float = 1.0
    # An include term must occur in the title or the lead (needs lead_words): the article is
    # about the topic from its first lines, not in a late aside.
    lead_required: bool = False
    # Score per 100 words of text (texts under 100 words count as 100) must reach this: a long
    # article with a few mentions is about something else (0 = off).
    min_density: float = 0.0
