"""The query model both backends share: `SearchQuery` and the parser of researchers' query text into an AST.

`SearchQuery` holds filters, sort and paging; the parser reads words, "phrases", AND/OR/NOT,
-exclusion, prefix* and parentheses.

Backends never see raw user text: they translate the AST returned by :func:`parse_query`.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal, Union

from .documents import epoch_seconds, to_utc

__all__ = [
    "SearchQuery", "QuerySyntaxError", "UnsupportedQuery", "parse_query",
    "Term", "Phrase", "And", "Or", "Not", "Node", "STOPWORDS", "MIN_PREFIX_CHARS",
    "tokenize_words", "to_dnf", "time_bounds", "is_negative_only", "walk",
]

MIN_PREFIX_CHARS = 2
MAX_QUERY_CHARS = 1000
MAX_DEPTH = 32

# Dropped when they appear as bare words (kept inside "quoted phrases": "Secretary of State").
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its of on or that the their this to was "
    "were will with".split()
)

_WORD_RE = re.compile(r"[^\W_]+")


class QuerySyntaxError(ValueError):
    """The query text cannot be parsed. ``position`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int | None = None, token: str | None = None) -> None:
        self.position = position
        self.token = token
        if position is not None:
            message = f"{message} (at position {position}{f', near {token!r}' if token else ''})"
        super().__init__(message)


class UnsupportedQuery(QuerySyntaxError):
    """Valid syntax, but this backend cannot evaluate it (e.g. too many OR branches for Meilisearch)."""


# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Term:
    """One word (already normalised: lower case, NFC); ``prefix`` for ``word*``."""

    word: str
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    """Words that must appear next to each other in this order."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class And:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    child: "Node"


Node = Union[Term, Phrase, And, Or, Not]


def tokenize_words(text: str) -> list[str]:
    """Split text into index words the way both backends do: letters/digits runs, lower-cased."""
    return [w.casefold() for w in _WORD_RE.findall(unicodedata.normalize("NFC", text))]


# ---------------------------------------------------------------- lexer


@dataclass
class _Tok:
    kind: Literal["WORD", "PHRASE", "LPAREN", "RPAREN", "AND", "OR", "NOT", "MINUS"]
    value: str
    pos: int
    prefix: bool = False


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "(":
            toks.append(_Tok("LPAREN", c, i)); i += 1
        elif c == ")":
            toks.append(_Tok("RPAREN", c, i)); i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError("unbalanced quote: closing \" missing", i, text[i:i + 20])
            tok = _Tok("PHRASE", text[i + 1:end], i)
            i = end + 1
            if i < n and text[i] == "*":
                raise QuerySyntaxError("'*' may only follow a word, not a phrase", i, "*")
            toks.append(tok)
        elif c == "-" and (not toks or _boundary(text, i)):
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise QuerySyntaxError("dangling '-': put it directly before a word or phrase", i, "-")
            toks.append(_Tok("MINUS", c, i)); i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '()"':
                i += 1
            word = text[start:i]
            prefix = False
            if word.endswith("*"):
                word, prefix = word[:-1], True
            if "*" in word:
                raise QuerySyntaxError("'*' is only allowed at the end of a word", start + word.index("*"), word)
            if word in ("AND", "OR", "NOT") and not prefix:
                toks.append(_Tok(word, word, start))  # type: ignore[arg-type]
            else:
                toks.append(_Tok("WORD", word, start, prefix))
    return toks


def _boundary(text: str, i: int) -> bool:
    """A '-' starts an exclusion only at the start of a word (``NATO -summit``, not ``Biden-Putin``)."""
    return i == 0 or text[i - 1].isspace() or text[i - 1] == "("


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, toks: list[_Tok]) -> None:
        self.text, self.toks, self.i, self.depth = text, toks, 0, 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Node | None:
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            if tok.kind == "RPAREN":
                raise QuerySyntaxError("unbalanced parenthesis: ')' without '('", tok.pos, ")")
            raise QuerySyntaxError("unexpected token", tok.pos, tok.value)  # pragma: no cover
        return node

    def or_expr(self) -> Node | None:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in ("OR", "AND", "RPAREN"):
                raise QuerySyntaxError("dangling OR: a word or phrase must follow", tok.pos, "OR")
            parts.append(self.and_expr())
        return _mk(Or, parts)

    def and_expr(self) -> Node | None:
        tok = self.peek()
        if tok is None or tok.kind in ("OR", "AND", "RPAREN"):
            if tok is None:
                raise QuerySyntaxError("query ends where a word or phrase was expected", len(self.text))
            what = "')' closes an empty group" if tok.kind == "RPAREN" else f"{tok.kind} needs a word before it"
            raise QuerySyntaxError(f"dangling operator: {what}", tok.pos, tok.value)
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", "RPAREN"):
            if tok.kind == "AND":
                self.i += 1
                nxt = self.peek()
                if nxt is None or nxt.kind in ("OR", "AND", "RPAREN"):
                    raise QuerySyntaxError("dangling AND: a word or phrase must follow", tok.pos, "AND")
            parts.append(self.unary())
        return _mk(And, parts)

    def unary(self) -> Node | None:
        tok = self.peek()
        assert tok is not None
        if tok.kind in ("NOT", "MINUS"):
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in ("OR", "AND", "RPAREN", "NOT", "MINUS"):
                raise QuerySyntaxError(f"dangling {tok.value}: a word, phrase or group must follow", tok.pos, tok.value)
            child = self.unary()
            return Not(child) if child is not None else None
        return self.primary()

    def primary(self) -> Node | None:
        tok = self.peek()
        assert tok is not None
        self.i += 1
        if tok.kind == "LPAREN":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QuerySyntaxError("parentheses nested too deeply", tok.pos, "(")
            nxt = self.peek()
            if nxt is None:
                raise QuerySyntaxError("unbalanced parenthesis: '(' never closed", tok.pos, "(")
            if nxt.kind == "RPAREN":
                raise QuerySyntaxError("empty parentheses", tok.pos, "()")
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "RPAREN":
                raise QuerySyntaxError("unbalanced parenthesis: '(' never closed", tok.pos, "(")
            self.i += 1
            self.depth -= 1
            return node
        if tok.kind == "PHRASE":
            words = tokenize_words(tok.value)
            if not words:
                return None
            return Term(words[0]) if len(words) == 1 else Phrase(tuple(words))
        if tok.kind == "WORD":
            words = tokenize_words(tok.value)
            if tok.prefix:
                if len(words) != 1:
                    raise QuerySyntaxError("'*' needs a single word before it", tok.pos, tok.value + "*")
                if len(words[0]) < MIN_PREFIX_CHARS:
                    raise QuerySyntaxError(
                        f"prefix too short: give at least {MIN_PREFIX_CHARS} letters before '*'", tok.pos, tok.value + "*")
                return Term(words[0], prefix=True)
            if not words:
                return None
            if len(words) > 1:  # U.S., Biden-Putin, 9/11: adjacent words
                return Phrase(tuple(words))
            if words[0] in STOPWORDS:
                return None
            return Term(words[0])
        raise QuerySyntaxError("unexpected token", tok.pos, tok.value)


def _mk(kind: type[And] | type[Or], parts: list[Node | None]) -> Node | None:
    kept: list[Node] = []
    for p in parts:
        if p is None:
            continue
        if isinstance(p, kind):
            kept.extend(p.children)
        elif p not in kept:
            kept.append(p)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else kind(tuple(kept))


def parse_query(text: str) -> Node | None:
    """Parse researcher query text into an AST; ``None`` means "no text constraint" (browse).

    Raises :class:`QuerySyntaxError` naming the position and token of the problem.
    """
    if text is None:
        return None
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"query longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
    toks = _lex(text)
    if not toks:
        return None
    return _Parser(text, toks).parse()


# ---------------------------------------------------------------- AST helpers


def walk(node: Node):
    yield node
    if isinstance(node, (And, Or)):
        for c in node.children:
            yield from walk(c)
    elif isinstance(node, Not):
        yield from walk(node.child)


def is_negative_only(node: Node) -> bool:
    """True for ``-summit`` or ``NOT a NOT b``: nothing positive to match, only things to exclude."""
    if isinstance(node, Not):
        return True
    if isinstance(node, And):
        return all(isinstance(c, Not) for c in node.children)
    return False


def to_dnf(node: Node, max_branches: int = 16) -> list[list[Node]]:
    """Disjunctive normal form: a list of conjunctions, each a list of Term/Phrase or Not(Term/Phrase).

    Used by backends that only understand "all of these words, none of those" per request.
    """

    def nnf(n: Node, neg: bool) -> list[list[Node]]:
        if isinstance(n, (Term, Phrase)):
            return [[Not(n) if neg else n]]
        if isinstance(n, Not):
            return nnf(n.child, not neg)
        children = n.children
        conj = isinstance(n, And) != neg  # De Morgan
        if conj:
            out: list[list[Node]] = [[]]
            for c in children:
                sub = nnf(c, neg)
                out = [a + b for a in out for b in sub]
                if len(out) > max_branches:
                    raise UnsupportedQuery(f"query too complex: more than {max_branches} OR-combinations")
            return out
        out = []
        for c in children:
            out.extend(nnf(c, neg))
            if len(out) > max_branches:
                raise UnsupportedQuery(f"query too complex: more than {max_branches} OR-combinations")
        return out

    result = []
    for conj in nnf(node, False):
        uniq: list[Node] = []
        for x in conj:
            if x not in uniq:
                uniq.append(x)
        if not any(Not(x) in uniq for x in uniq if not isinstance(x, Not)):  # a AND NOT a: empty
            result.append(uniq)
    return result


# ---------------------------------------------------------------- the query model


@dataclass
class SearchQuery:
    """What a researcher asks for. ``since``/``until`` dates are whole UTC days, inclusive."""

    text: str = ""
    topics: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    since: date | datetime | None = None
    until: date | datetime | None = None
    sort: Literal["relevance", "date"] = "relevance"
    collapse_stories: bool = False
    include_duplicates: bool = True
    limit: int = 20
    offset: int = 0

    def __post_init__(self) -> None:
        if self.sort not in ("relevance", "date"):
            raise ValueError(f"sort must be 'relevance' or 'date', not {self.sort!r}")
        if not 0 <= self.limit <= 1000:
            raise ValueError("limit must be between 0 and 1000")
        if self.offset < 0:
            raise ValueError("offset must be >= 0")

    def parsed(self) -> Node | None:
        return parse_query(self.text)


def time_bounds(q: SearchQuery) -> tuple[int | None, int | None]:
    """Inclusive ``since`` and exclusive ``until`` as epoch seconds (UTC).

    A date ``until`` includes the whole day: everything before 00:00 of the next day.
    A datetime ``until`` is inclusive to the second.
    """
    lo = hi = None
    if q.since is not None:
        lo = epoch_seconds(_start(q.since))
    if q.until is not None:
        if isinstance(q.until, datetime):
            hi = epoch_seconds(to_utc(q.until)) + 1
        else:
            hi = epoch_seconds(_start(q.until + timedelta(days=1)))
    return lo, hi


def _start(d: date | datetime) -> datetime:
    if isinstance(d, datetime):
        return to_utc(d)
    return datetime.combine(d, time(0), tzinfo=timezone.utc)
