"""Tantivy schema, analyzers and the translation of the query AST into Tantivy queries.

The analyzer mirrors FTS5's ``porter unicode61 remove_diacritics 2``: letter/digit runs, lower
case, diacritics folded, English stemming (Snowball English; FTS5 uses the older Porter, so a
few rare words stem differently). It is registered under :data:`TOKENIZER` on every open: the
binding does not persist custom tokenizers with the index.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import tantivy
from tantivy import Filter, Occur, Query, SchemaBuilder, TextAnalyzerBuilder, Tokenizer

from .query import And, Node, Not, Or, Phrase, QuerySyntaxError, Term

__all__ = ["TOKENIZER", "FIELD_BOOSTS", "NO_DATE", "article_schema", "story_schema", "analyzers",
           "Translator", "story_hash"]

TOKENIZER = "newsmon"
FIELD_BOOSTS = (("title", 4.0), ("text", 1.0), ("source", 0.5))  # as FTS5's bm25 weights
NO_DATE = -(2 ** 62)  # articles without a date sort last and fall outside every date range
PREFIX_EXPANSIONS = 64  # terms highlighted for one prefix* in snippets


def analyzers() -> tuple[tantivy.TextAnalyzer, tantivy.TextAnalyzer]:
    """(indexing analyzer, the same without stemming for prefix queries)."""
    base = TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.lowercase()).filter(Filter.ascii_fold())
    stem = TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.lowercase()).filter(
        Filter.ascii_fold()).filter(Filter.stemmer("english"))
    return stem.build(), base.build()


def article_schema() -> tantivy.Schema:
    sb = SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("title", stored=True, tokenizer_name=TOKENIZER)
    sb.add_text_field("text", stored=True, tokenizer_name=TOKENIZER)
    sb.add_text_field("source", stored=True, tokenizer_name=TOKENIZER)
    sb.add_text_field("source_key", fast=True, tokenizer_name="raw")
    sb.add_text_field("url", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("language", stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("author", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("topics", stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("story_id", stored=True, tokenizer_name="raw")
    sb.add_text_field("story_key", stored=True, tokenizer_name="raw")
    sb.add_text_field("duplicate_of", stored=True, tokenizer_name="raw", index_option="basic")
    # i64, not u64: the binding turns a Python int into an i64 term, which never matches a u64 field
    sb.add_integer_field("story_hash", stored=True, indexed=True, fast=True)
    sb.add_integer_field("is_dup", stored=True, indexed=True, fast=True)
    sb.add_integer_field("published", stored=True, indexed=True, fast=True)
    sb.add_integer_field("day", indexed=True, fast=True)
    return sb.build()


def story_schema() -> tantivy.Schema:
    """One document per story: what the front page (newest stories, no filters) reads."""
    sb = SchemaBuilder()
    sb.add_text_field("story_key", stored=True, tokenizer_name="raw")
    sb.add_text_field("head", stored=True, tokenizer_name="raw")
    sb.add_text_field("head_nodup", stored=True, tokenizer_name="raw")
    sb.add_integer_field("size", stored=True)
    sb.add_integer_field("size_nodup", stored=True)
    sb.add_integer_field("newest", indexed=True, fast=True)
    sb.add_integer_field("newest_nodup", indexed=True, fast=True)
    sb.add_integer_field("has_nodup", indexed=True, fast=True)
    return sb.build()


def story_hash(key: str) -> int:
    """A signed 64-bit number for a story key (fast fields and aggregations want numbers)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


@dataclass
class Translator:
    """Turns the parsed AST into a Tantivy query over title, text and source (with FTS5's weights)."""

    schema: tantivy.Schema
    stem: tantivy.TextAnalyzer
    fold: tantivy.TextAnalyzer

    def tokens(self, word: str) -> list[str]:
        return self.stem.analyze(word)

    def to_query(self, node: Node) -> Query:
        if isinstance(node, Term):
            if node.prefix:
                toks = self.fold.analyze(node.word)
                if not toks:
                    return Query.empty_query()
                pattern = _regex_literal(toks[0]) + ".*"
                return self._fields(lambda f: Query.regex_query(self.schema, f, pattern))
            toks = self.tokens(node.word)
            return self._words(toks)
        if isinstance(node, Phrase):
            return self._words(self.tokens(" ".join(node.words)))
        if isinstance(node, Or):
            for c in node.children:
                if isinstance(c, Not):
                    raise QuerySyntaxError(
                        "an exclusion inside OR needs a positive word beside it, e.g. (NATO -summit) OR Ukraine")
            return Query.boolean_query([(Occur.Should, self.to_query(c)) for c in node.children])
        if isinstance(node, And):
            pos = [c for c in node.children if not isinstance(c, Not)]
            neg = [c.child for c in node.children if isinstance(c, Not)]
            if not pos:
                raise QuerySyntaxError(
                    "an exclusion inside a group needs a positive word beside it, e.g. (NATO -summit)")
            parts = [(Occur.Must, self.to_query(c)) for c in pos]
            parts += [(Occur.MustNot, self._must_not(n)) for n in neg]
            return Query.boolean_query(parts)
        if isinstance(node, Not):
            raise QuerySyntaxError(
                "an exclusion inside OR needs a positive word beside it, e.g. (NATO -summit) OR Ukraine")
        raise TypeError(node)  # pragma: no cover

    def _must_not(self, node: Node) -> Query:
        if isinstance(node, Not):  # NOT NOT x: FTS5 rejects it the same way
            raise QuerySyntaxError("an exclusion inside OR needs a positive word beside it, e.g. (NATO -summit) OR Ukraine")
        return self.to_query(node)

    def negative(self, node: Node) -> Query:
        """For ``-a`` / ``NOT a NOT b``: everything except articles matching any excluded part."""
        kids = [node] if isinstance(node, Not) else list(node.children)  # type: ignore[union-attr]
        excluded = [(Occur.MustNot, self.to_query(k.child)) for k in kids]  # type: ignore[union-attr]
        return Query.boolean_query([(Occur.Must, Query.all_query()), *excluded])

    def _words(self, toks: list[str]) -> Query:
        if not toks:
            return Query.empty_query()
        if len(toks) == 1:
            return self._fields(lambda f: Query.term_query(self.schema, f, toks[0]))
        return self._fields(lambda f: Query.phrase_query(self.schema, f, toks))

    @staticmethod
    def _fields(make) -> Query:
        return Query.boolean_query([(Occur.Should, Query.boost_query(make(f), b)) for f, b in FIELD_BOOSTS])

    def highlight_terms(self, node: Node, searcher: tantivy.Searcher, field: str) -> list[str]:
        """Index terms worth marking in ``field``: the positive words, phrases' words and prefix expansions."""
        out: list[str] = []

        def visit(n: Node, neg: bool) -> None:
            if isinstance(n, Not):
                visit(n.child, not neg)
            elif isinstance(n, (And, Or)):
                for c in n.children:
                    visit(c, neg)
            elif neg:
                return
            elif isinstance(n, Term) and n.prefix:
                toks = self.fold.analyze(n.word)
                if toks:
                    out.extend(t for t, _ in searcher.terms_with_prefix(field, toks[0], limit=PREFIX_EXPANSIONS))
            elif isinstance(n, Term):
                out.extend(self.tokens(n.word))
            elif isinstance(n, Phrase):
                out.extend(self.tokens(" ".join(n.words)))

        visit(node, False)
        return list(dict.fromkeys(out))


def _regex_literal(tok: str) -> str:
    """Tokens are letter/digit runs, but escape anything a regex would read as syntax anyway."""
    return "".join(c if c.isalnum() else "\\" + c for c in tok)
