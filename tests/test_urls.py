"""URL canonicalisation: what must be dropped, what must be kept."""

import pytest

from monitor.stages.urls import InvalidURLError, canonicalize_url, safe_canonical, source_of


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("HTTP://WWW.Example.COM:80/a/b", "http://www.example.com/a/b"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("https://example.com/x#section-2", "https://example.com/x"),
        ("https://example.com/x?utm_source=rss&utm_medium=feed&utm_campaign=c", "https://example.com/x"),
        ("https://example.com/x?fbclid=abc&gclid=def&id=7", "https://example.com/x?id=7"),
        ("https://example.com/x?b=2&a=1", "https://example.com/x?a=1&b=2"),
        ("https://example.com/story?id=5&page=2", "https://example.com/story?id=5&page=2"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a/../b/./c", "https://example.com/b/c"),
    ],
)
def test_canonical_forms(raw, canonical):
    assert canonicalize_url(raw) == canonical


def test_parameters_that_change_the_page_are_kept():
    a = canonicalize_url("https://example.com/search?q=nato&utm_source=x")
    b = canonicalize_url("https://example.com/search?q=ukraine")
    assert a != b and "q=nato" in a


def test_relative_links_resolve_against_the_base():
    assert canonicalize_url("/news/1.html?utm_medium=rss", "https://example.com/feed.xml") == "https://example.com/news/1.html"


@pytest.mark.parametrize("bad", ["", "not a url", "ftp://example.com/x", "javascript:alert(1)", "file:///etc/passwd", "//example.com"])
def test_non_http_urls_are_refused(bad):
    with pytest.raises(InvalidURLError):
        canonicalize_url(bad)
    assert safe_canonical(bad) is None


def test_source_is_the_host_without_www():
    assert source_of("https://www.Reuters.com:443/world/x") == "reuters.com"
    assert source_of("http://127.0.0.1:8000/a") == "127.0.0.1"
