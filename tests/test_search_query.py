"""The researcher query parser and query model (shared by both backends)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from search.fts5 import fts_match_expression
from search.query import (And, Not, Or, Phrase, QuerySyntaxError, SearchQuery, Term, UnsupportedQuery,
                          parse_query, time_bounds, to_dnf)


@pytest.mark.parametrize("text, ast", [
    ("NATO", Term("nato")),
    ("NATO summit", And((Term("nato"), Term("summit")))),
    ("NATO AND summit", And((Term("nato"), Term("summit")))),
    ('"Article 5"', Phrase(("article", "5"))),
    ("NATO -summit", And((Term("nato"), Not(Term("summit"))))),
    ("NATO NOT summit", And((Term("nato"), Not(Term("summit"))))),
    ("a1 OR b1 c1", Or((Term("a1"), And((Term("b1"), Term("c1")))))),  # AND binds tighter than OR
    ("(a1 OR b1) c1", And((Or((Term("a1"), Term("b1"))), Term("c1")))),
    ("Zelensk*", Term("zelensk", prefix=True)),
    ("Залужний", Term("залужний")),
    ("ЗАЛУЖНИЙ", Term("залужний")),
    ("Biden-Putin", Phrase(("biden", "putin"))),        # a hyphen inside a word is not an exclusion
    ("U.S. sanctions", And((Phrase(("u", "s")), Term("sanctions")))),
    ("-\"air defence\"", Not(Phrase(("air", "defence")))),
    ("NOT (a1 OR b1)", Not(Or((Term("a1"), Term("b1"))))),
    ("nato and the summit", And((Term("nato"), Term("summit")))),  # lower-case 'and' is a stopword
    ('"Secretary of State"', Phrase(("secretary", "of", "state"))),  # kept inside phrases
])
def test_parse(text, ast):
    assert parse_query(text) == ast


@pytest.mark.parametrize("text", ["", "   ", "the of and", '""', "!!! ???", "(the)"])
def test_empty_and_stopword_only_queries_mean_browse(text):
    assert parse_query(text) is None


@pytest.mark.parametrize("text, pos, token", [
    ('"Article 5', 0, '"Article 5'),
    ("NATO \"summit", 5, '"summit'),
    ("(NATO OR summit", 0, "("),
    ("NATO )", 5, ")"),
    ("NATO OR", 5, "OR"),
    ("OR NATO", 0, "OR"),
    ("NATO AND", 5, "AND"),
    ("NATO AND OR x", 5, "AND"),
    ("NOT", 0, "NOT"),
    ("NATO -", 5, "-"),
    ("()", 0, "()"),
    ("Zel*ensky", 3, "Zel*ensky"),
    ("a*", 0, "a*"),
    ('"nato summit"*', 13, "*"),
])
def test_syntax_errors_name_position_and_token(text, pos, token):
    with pytest.raises(QuerySyntaxError) as e:
        parse_query(text)
    assert e.value.position == pos
    assert e.value.token == token
    assert f"position {pos}" in str(e.value)


def test_query_syntax_error_is_a_value_error():
    assert issubclass(QuerySyntaxError, ValueError)
    assert issubclass(UnsupportedQuery, QuerySyntaxError)


def test_deep_nesting_and_huge_queries_are_refused_cleanly():
    with pytest.raises(QuerySyntaxError):
        parse_query("(" * 40 + "x" + ")" * 40)
    with pytest.raises(QuerySyntaxError):
        parse_query("nato " * 300)


def test_dnf():
    ast = parse_query("(a1 OR b1) -c1")
    assert to_dnf(ast) == [[Term("a1"), Not(Term("c1"))], [Term("b1"), Not(Term("c1"))]]
    assert to_dnf(parse_query("NOT (a1 AND b1)")) == [[Not(Term("a1"))], [Not(Term("b1"))]]
    assert to_dnf(parse_query("x1 NOT x1")) == []


def test_fts_expression_quotes_everything():
    assert fts_match_expression(parse_query('NATO -summit "Article 5" Zelensk*')) == \
        '("nato" AND "article 5" AND "zelensk"*) NOT "summit"'
    assert fts_match_expression(parse_query("a1 OR (b1 c1)")) == '("a1" OR ("b1" AND "c1"))'
    # FTS5 keywords and syntax characters arrive as plain quoted words (repeats collapse)
    assert fts_match_expression(parse_query("near NEAR title:x")) == '("near" AND "title x")'


def test_exclusion_inside_or_needs_a_positive_partner():
    with pytest.raises(QuerySyntaxError):
        fts_match_expression(parse_query("nato OR -summit"))


def test_time_bounds_are_whole_utc_days():
    q = SearchQuery(since=date(2026, 11, 10), until=date(2026, 11, 10))
    lo, hi = time_bounds(q)
    assert datetime.fromtimestamp(lo, timezone.utc) == datetime(2026, 11, 10, tzinfo=timezone.utc)
    assert datetime.fromtimestamp(hi, timezone.utc) == datetime(2026, 11, 11, tzinfo=timezone.utc)
    kyiv = timezone(timedelta(hours=2))
    lo, hi = time_bounds(SearchQuery(since=datetime(2026, 11, 10, 2, 0, tzinfo=kyiv),
                                     until=datetime(2026, 11, 10, 12, 0)))  # naive = UTC
    assert lo == int(datetime(2026, 11, 10, 0, 0, tzinfo=timezone.utc).timestamp())
    assert hi == int(datetime(2026, 11, 10, 12, 0, 1, tzinfo=timezone.utc).timestamp())


def test_query_model_validates():
    with pytest.raises(ValueError):
        SearchQuery(sort="oldest")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SearchQuery(limit=-1)
    with pytest.raises(ValueError):
        SearchQuery(offset=-5)
