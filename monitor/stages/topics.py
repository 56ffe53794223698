"""Topic tagging: decide which configured topics (feeds.yaml `topics:`) an article is about, and why.

Rules are compiled once. Tagging one article tokenises its title and text once each and builds a
word -> positions index; every term, prefix term and phrase is then found by dictionary lookup
(phrases by checking the words after their first word), so that proximity (`near`), the lead and
ignored phrases ("5.56 NATO") cost no extra pass. The matching semantics are described in the
comment block above `topics:` in feeds.yaml; every decision comes with a `TopicMatch` that says
which terms and rules gave it and its score.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from monitor.stages.topicrules import TermGroup, TopicRule

__all__ = ["tag_topics", "TopicTagger", "TopicMatch", "TermHit", "GroupResult", "compile_rules",
           "TopicRule", "TermGroup"]

# A word is a run of letters/digits; everything else (spaces, hyphens, apostrophes, dots)
# separates words. "NATO's" -> NATO, s; "Senators" stays one word and never equals NATO.
_WORD = re.compile(r"[^\W_]+")


def _forms(word: str) -> tuple[str, ...]:
    """Surface forms a written term may take (the case rule)."""
    if word == word.lower():
        # Lowercase: any case in practice (sentence start, headlines, ALL CAPS).
        return tuple(sorted({word, word.capitalize(), word.upper()}))
    if word.isupper() and len(word) >= 2:
        # Acronyms are case-sensitive: NATO, never "Nato" (a first name) or "nato" (Italian).
        return (word,)
    return tuple(sorted({word, word.upper()}))


def split_term(text: str) -> list[str]:
    """Words of a term or phrase; a trailing * (prefix match) stays on the last word."""
    words = _WORD.findall(text)
    if text.endswith("*") and words:
        words[-1] += "*"
    return words


class _Field:
    """One field (title or text) prepared for lookups: its words and where each occurs."""

    __slots__ = ("tokens", "index", "memo", "slot_memo", "_prefixes", "_prefix_positions")

    def __init__(self, text: str, prefixes: tuple[str, ...] = ()):
        self.tokens = _WORD.findall(text)
        index: dict[str, list[int]] = {}
        for i, w in enumerate(self.tokens):
            lst = index.get(w)
            if lst is None:
                index[w] = [i]
            else:
                lst.append(i)
        self.index = index
        # Positions per pattern text: the same term recurs in several groups and `near` lists.
        self.memo: dict[str, list[int]] = {}
        self.slot_memo: dict[int, set[int]] = {}
        self._prefixes = prefixes
        self._prefix_positions: dict[str, list[int]] | None = None

    def prefix_positions(self, prefix: str) -> list[int]:
        table = self._prefix_positions
        if table is None:
            # One pass over the distinct words for every prefix term of every rule; the tuple
            # test runs in C and rejects almost every word.
            table = {}
            prefixes = self._prefixes
            if prefixes:
                for w, ps in self.index.items():
                    if w.startswith(prefixes):
                        for pf in prefixes:
                            if w.startswith(pf):
                                table.setdefault(pf, []).extend(ps)
            for ps in table.values():
                ps.sort()
            self._prefix_positions = table
        got = table.get(prefix)
        if got is None and prefix not in self._prefixes:
            got = sorted(p for w, ps in self.index.items() if w.startswith(prefix) for p in ps)
            table[prefix] = got
        return got or []


class _Word:
    __slots__ = ("forms", "prefix")

    def __init__(self, word: str):
        self.prefix = word.endswith("*")
        self.forms = _forms(word.rstrip("*"))

    def positions(self, f: _Field) -> list[int]:
        if self.prefix:
            out: list[int] = []
            for form in self.forms:
                out.extend(f.prefix_positions(form))
            return out
        index = f.index
        out = []
        for form in self.forms:
            got = index.get(form)
            if got:
                out.extend(got)
        return out

    def matches(self, token: str) -> bool:
        if self.prefix:
            return token.startswith(self.forms)
        return token in self.forms


class _Pattern:
    """A term (one word) or a phrase (several words in order, any separators between them)."""

    __slots__ = ("text", "words", "length")

    def __init__(self, text: str):
        self.text = text
        self.words = tuple(_Word(w) for w in split_term(text))
        self.length = len(self.words)

    def positions(self, f: _Field) -> list[int]:
        got = f.memo.get(self.text)
        if got is None:
            got = f.memo[self.text] = self._positions(f)
        return got

    def _positions(self, f: _Field) -> list[int]:
        starts = self.words[0].positions(f)
        if self.length == 1 or not starts:
            return starts
        tokens = f.tokens
        n = len(tokens)
        rest = self.words[1:]
        out = []
        for i in starts:
            if i + self.length <= n and all(w.matches(tokens[i + k + 1]) for k, w in enumerate(rest)):
                out.append(i)
        return out


@dataclass(frozen=True)
class TermHit:
    """How often one term or phrase counted, in the title and in the text."""

    term: str
    title: int
    text: int

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "title": self.title, "text": self.text}


@dataclass(frozen=True)
class GroupResult:
    """A require_any group or a signal: what it counted and what it added or demanded."""

    name: str
    count: int
    min_count: int
    points: float
    ok: bool
    hits: tuple[TermHit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count, "min_count": self.min_count,
                "points": round(self.points, 3), "ok": self.ok, "hits": [h.to_dict() for h in self.hits]}


@dataclass(frozen=True)
class TopicMatch:
    """Why a topic was (or was not) assigned: the terms found, the score and each rule's verdict."""

    name: str
    assigned: bool
    score: float
    min_score: float
    title_hits: int
    lead_hits: int
    text_hits: int
    hits: tuple[TermHit, ...] = ()
    signals: tuple[GroupResult, ...] = ()
    groups: tuple[GroupResult, ...] = ()
    excluded_by: tuple[str, ...] = ()
    ignored: int = 0
    density: float = 0.0
    min_density: float = 0.0
    lead_missing: bool = False

    @property
    def excluded(self) -> bool:
        return bool(self.excluded_by)

    @property
    def group_counts(self) -> tuple[int, ...]:
        return tuple(g.count for g in self.groups)

    def reason(self) -> str:
        """One line a researcher can read: the verdict and what decided it."""
        terms = ", ".join(_hit_text(h) for h in self.hits) or "no include terms"
        sig = "; ".join(f"{g.name} {g.points:+g}" for g in self.signals if g.count)
        head = f"score {self.score:g} (min {self.min_score:g}) from {terms}" + (f"; {sig}" if sig else "")
        if self.excluded_by:
            return f"vetoed by {', '.join(self.excluded_by)}; {head}"
        if self.score < self.min_score:
            return f"score too low: {head}"
        if self.lead_missing:
            return f"no include term in the title or lead; {head}"
        if self.density < self.min_density:
            return f"too sparse for its length: {self.density:.2f} points per 100 words (min {self.min_density:g}); {head}"
        missing = [g for g in self.groups if not g.ok]
        if missing:
            return "missing " + "; ".join(f"{g.name} ({g.count} of {g.min_count})" for g in missing) + f"; {head}"
        got = "; ".join(f"{g.name} {g.count}/{g.min_count}" for g in self.groups)
        return head + (f"; required: {got}" if got else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.name, "assigned": self.assigned, "score": round(self.score, 3),
            "min_score": self.min_score, "title_hits": self.title_hits, "lead_hits": self.lead_hits,
            "text_hits": self.text_hits, "hits": [h.to_dict() for h in self.hits],
            "signals": [g.to_dict() for g in self.signals if g.count],
            "groups": [g.to_dict() for g in self.groups], "excluded_by": list(self.excluded_by),
            "ignored": self.ignored, "density": round(self.density, 3), "min_density": self.min_density,
            "lead_missing": self.lead_missing,
            "reason": self.reason(),
        }


def _hit_text(h: TermHit) -> str:
    parts = []
    if h.title:
        parts.append(f"{h.title}x title")
    if h.text:
        parts.append(f"{h.text}x text")
    return f"{h.term} ({', '.join(parts)})"


class _Slot:
    """A set of patterns whose occurrences are counted together, optionally only near others."""

    def __init__(self, words: Sequence[str], near: Sequence[str] = (), window: int = 0):
        self.patterns = tuple(_Pattern(w) for w in words if _WORD.search(w))
        # Plain one-word terms are found by one set intersection with the field's words (in C);
        # prefix terms and phrases go through their own lookup.
        self._by_form: dict[str, list[str]] = {}
        for p in self.patterns:
            if p.length == 1 and not p.words[0].prefix:
                for form in p.words[0].forms:
                    self._by_form.setdefault(form, []).append(p.text)
        self._forms = frozenset(self._by_form)
        # Phrases are only tried when their first word occurs (again one intersection).
        self._phrase_by_first: dict[str, list[_Pattern]] = {}
        for p in self.patterns:
            if p.length > 1 and not p.words[0].prefix:
                for form in p.words[0].forms:
                    self._phrase_by_first.setdefault(form, []).append(p)
        self._phrase_firsts = frozenset(self._phrase_by_first)
        self._other = tuple(p for p in self.patterns if p.words[0].prefix)
        self.near = _Slot(near) if near else None
        self.window = window
        self.empty = not self.patterns

    def _found(self, f: _Field) -> list[tuple[int, str]]:
        found = []
        index = f.index
        for form in self._forms & index.keys():
            for text in self._by_form[form]:
                found.extend((i, text) for i in index[form])
        firsts = self._phrase_firsts & index.keys()
        if firsts:
            tried = set()
            for form in firsts:
                for p in self._phrase_by_first[form]:
                    if p.text not in tried:
                        tried.add(p.text)
                        found.extend((i, p.text) for i in p.positions(f))
        for p in self._other:
            found.extend((i, p.text) for i in p.positions(f))
        return found

    def _position_set(self, f: _Field) -> set[int]:
        key = id(self)
        got = f.slot_memo.get(key)
        if got is None:
            got = f.slot_memo[key] = {i for i, _ in self._found(f)}
        return got

    def occurrences(self, f: _Field, drop: frozenset[int] = frozenset(),
                    other: tuple[_Field, int] | None = None) -> list[tuple[int, str]]:
        """(position, term) of every counted occurrence in one field.

        `other` is the neighbouring field and its offset in this field's word positions, so
        that proximity runs across the headline into the lead (title words sit just before
        the text's first word).
        """
        found = self._found(f)
        if drop:
            found = [o for o in found if o[0] not in drop]
        if not found or self.near is None:
            return found
        anchor_set = set(self.near._position_set(f))
        if other is not None:
            of, offset = other
            anchor_set.update(i + offset for i in self.near._position_set(of))
        if not anchor_set:
            return []
        anchors = sorted(anchor_set)
        w = self.window
        kept = []
        for i, term in found:
            j = bisect_left(anchors, i - w)
            # The nearest anchor at or after i - w; an anchor at i itself is the same word.
            while j < len(anchors) and anchors[j] <= i + w:
                if anchors[j] != i:
                    kept.append((i, term))
                    break
                j += 1
        return kept

    def all_patterns(self) -> tuple[_Pattern, ...]:
        return self.patterns + (self.near.patterns if self.near else ())

    def spans(self, f: _Field) -> frozenset[int]:
        """Every word position covered by one of the patterns (for ignore_phrases)."""
        return frozenset(i + k for p in self.patterns for i in p.positions(f) for k in range(p.length))


def _hits(title_occ: list[tuple[int, str]], text_occ: list[tuple[int, str]]) -> tuple[TermHit, ...]:
    counts: dict[str, list[int]] = {}
    for _, t in title_occ:
        counts.setdefault(t, [0, 0])[0] += 1
    for _, t in text_occ:
        counts.setdefault(t, [0, 0])[1] += 1
    return tuple(TermHit(t, a, b) for t, (a, b) in counts.items())


class _Group:
    def __init__(self, g: TermGroup, default_name: str):
        self.spec = g
        self.name = g.name or default_name
        self.slot = _Slot(g.terms + g.phrases, g.near, g.window)

    def count(self, title: _Field, text: _Field) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        n_title = len(title.tokens)
        return (self.slot.occurrences(title, other=(text, n_title)),
                self.slot.occurrences(text, other=(title, -n_title)))


class _CompiledRule:
    def __init__(self, rule: TopicRule):
        self.rule = rule
        self.include = _Slot(rule.include_terms + rule.include_phrases)
        self.exclude = _Slot(rule.exclude_terms + rule.exclude_phrases)
        self.ignore = _Slot(rule.ignore_phrases)
        self.groups = tuple(_Group(g, f"require_any[{i}]") for i, g in enumerate(rule.require_any))
        self.signals = tuple(_Group(g, f"signals[{i}]") for i, g in enumerate(rule.signals))

    def slots(self) -> tuple[_Slot, ...]:
        return (self.include, self.exclude, self.ignore, *(g.slot for g in self.groups + self.signals))

    def match(self, title: _Field, text: _Field) -> TopicMatch:
        r = self.rule
        drop_title = self.ignore.spans(title) if not self.ignore.empty else frozenset()
        drop_text = self.ignore.spans(text) if not self.ignore.empty else frozenset()
        t_occ = self.include.occurrences(title, drop_title)
        x_occ = self.include.occurrences(text, drop_text)
        ignored = (len(self.include.occurrences(title)) - len(t_occ)) + (len(self.include.occurrences(text)) - len(x_occ)) \
            if (drop_title or drop_text) else 0
        lead = sum(1 for i, _ in x_occ if i < r.lead_words)
        body = len(x_occ) - lead
        score = len(t_occ) * r.title_weight + lead * r.lead_weight + body
        signals = []
        for g in self.signals:
            st, sx = g.count(title, text)
            n = len(st) * r.title_weight + len(sx)
            if g.spec.max_count:
                n = min(n, g.spec.max_count)
            pts = n * g.spec.weight
            score += pts
            signals.append(GroupResult(g.name, n, 0, pts, True, _hits(st, sx)))
        groups = []
        for g in self.groups:
            st, sx = g.count(title, text)
            n = len(st) + len(sx)
            groups.append(GroupResult(g.name, n, g.spec.min_count, 0.0, n >= g.spec.min_count, _hits(st, sx)))
        excluded: tuple[str, ...] = ()
        if not self.exclude.empty:
            ex = self.exclude.occurrences(title) + self.exclude.occurrences(text)
            excluded = tuple(sorted({t for _, t in ex}))
        score = round(score, 6)
        density = score * 100 / max(len(text.tokens), 100)
        lead_missing = r.lead_required and not t_occ and not lead
        assigned = (score >= r.min_score and not lead_missing and density >= r.min_density
                    and all(g.ok for g in groups) and not excluded)
        return TopicMatch(
            name=r.name, assigned=assigned, score=score, min_score=r.min_score, title_hits=len(t_occ),
            lead_hits=lead, text_hits=len(x_occ), hits=_hits(t_occ, x_occ), signals=tuple(signals),
            groups=tuple(groups), excluded_by=excluded, ignored=ignored, density=density,
            min_density=r.min_density, lead_missing=lead_missing,
        )


class TopicTagger:
    """Rules compiled once; `tag()` returns the assigned topic names in rule order."""

    def __init__(self, rules: Sequence[TopicRule]):
        self.rules = tuple(rules)
        self._rules = tuple(_CompiledRule(r) for r in rules)
        self._prefixes = tuple(sorted({
            form for r in self._rules for slot in r.slots() for p in slot.all_patterns()
            for w in p.words if w.prefix for form in w.forms
        }))

    def explain(self, title: str, text: str) -> list[TopicMatch]:
        """Every rule's decision on this article, assigned or not, with its reasons."""
        title_f = _Field(title or "", self._prefixes)
        text_f = _Field(text or "", self._prefixes)
        return [r.match(title_f, text_f) for r in self._rules]

    def assigned(self, title: str, text: str) -> list[TopicMatch]:
        return [m for m in self.explain(title, text) if m.assigned]

    def tag(self, title: str, text: str) -> list[str]:
        return [m.name for m in self.assigned(title, text)]


@lru_cache(maxsize=32)
def compile_rules(rules: tuple[TopicRule, ...]) -> TopicTagger:
    return TopicTagger(rules)


def tag_topics(title: str, text: str, rules: Sequence[TopicRule]) -> list[str]:
    """Topic names assigned to an article (several, or none), in the order the rules are given.

    The compiled form of `rules` is cached (TopicRule is frozen and hashable), so calling this
    per article with the same rules does not recompile; hold a `TopicTagger` to skip even that.
    """
    return compile_rules(tuple(rules)).tag(title, text)


def explain_topics(title: str, text: str, rules: Sequence[TopicRule]) -> list[TopicMatch]:
    """The assigned topics with their explanations (see `TopicMatch.to_dict`)."""
    return compile_rules(tuple(rules)).assigned(title, text)


@dataclass(frozen=True)
class TopicTag:
    """A tag as stored: the topic, its score and the explanation (`TopicMatch.to_dict()`)."""

    topic: str
    score: float
    explanation: dict[str, Any] = field(default_factory=dict)


def topic_tags(title: str, text: str, rules: Sequence[TopicRule]) -> list[TopicTag]:
    return [TopicTag(m.name, m.score, m.to_dict()) for m in explain_topics(title, text, rules)]
