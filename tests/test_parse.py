"""Feed parsing: the feedparser corpus, the fixture site's feeds, JSON Feed and hostile inputs."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from monitor.stages.parse import MAX_ENTRIES, MAX_TITLE, FeedParseError, ParsedFeed, parse_feed

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "feeds" / "feedparser"
SITE = DATA / "site"
BASE = "http://127.0.0.1:8000"

CORPUS_FILES = sorted(
    p for p in CORPUS.rglob("*") if p.is_file() and p.name not in ("README.md", "LICENSE")
)


def _meta(data: bytes) -> tuple[dict[str, str], str]:
    head = data[:4000].decode("latin-1")
    headers = {m.group(1): m.group(2).strip() for m in re.finditer(r"Header:\s*([\w-]+):[ \t]*(.*)", head)}
    expect = re.search(r"Expect:\s*(.*?)(?:-->|\n|\"\s*,)", head)
    return headers, expect.group(1).strip() if expect else ""


def test_corpus_is_present():
    assert len(CORPUS_FILES) == 121


# Well-formed, but with an internal DTD subset: refused by policy (no DTD is ever processed).
REFUSED_BY_POLICY = {"wellformed/rdf/doctype_contains_entity_decl.xml"}


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_FILES])
def test_corpus_file_parses_or_fails_cleanly(path):
    data = path.read_bytes()
    headers, expect = _meta(data)
    name = path.relative_to(CORPUS).as_posix()
    url = f"http://127.0.0.1:8097/{name}"
    if name in REFUSED_BY_POLICY:
        with pytest.raises(FeedParseError, match="DTD"):
            parse_feed(data, url=url, headers=headers)
        return
    try:
        result = parse_feed(data, url=url, headers=headers)
    except FeedParseError as exc:
        assert not expect.startswith("not bozo"), f"well-formed feed refused: {exc}"
        assert str(exc)
        return
    assert isinstance(result, ParsedFeed)
    if expect.startswith("not bozo"):
        assert result.bozo_error is None
        if "entries[0]" in expect:
            assert result.entries, "well-formed feed lost its entries"
    for e in result.entries:
        assert isinstance(e.title, str) and len(e.title) <= MAX_TITLE
        assert e.link is None or e.link.startswith(("http://", "https://"))
        assert e.published is None or e.published.tzinfo is not None


def test_corpus_relative_links_resolve_against_document_url():
    path = CORPUS / "wellformed" / "http" / "headers_content_location-unsafe.xml"
    headers, _ = _meta(path.read_bytes())
    result = parse_feed(path.read_bytes(), url="http://127.0.0.1:8097/x.xml", headers=headers)
    # A javascript: Content-Location must never become the base for links.
    assert all("javascript" not in (e.link or "") for e in result.entries)


def test_json_feed_example():
    data = (CORPUS / "json" / "example.json").read_bytes()
    result = parse_feed(data, url="https://example.org/feed.json", headers={"Content-Type": "application/feed+json"})
    assert result.title == "My Example Feed" and result.bozo_error is None
    assert result.version == "json1"
    assert [e.link for e in result.entries] == ["https://example.org/second-item", "https://example.org/initial-post"]
    assert result.entries[0].content_html == "This is a second item."
    assert result.entries[1].author == "you"
    assert "<script>" in result.entries[1].content_html  # untrusted HTML, sanitised downstream
    # Also recognised without a JSON content type.
    assert len(parse_feed(data, url="https://example.org/feed.json").entries) == 2


def test_json_feed_dates_and_relative_urls():
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {"id": 1, "url": "/a", "title": "A", "date_published": "2025-02-10T14:05:00+01:00", "authors": [{"name": "X"}]},
            {"id": "2", "url": "/b", "date_published": "2999-01-01T00:00:00Z", "summary": "<b>s</b>"},
        ],
    }
    result = parse_feed(json.dumps(doc).encode(), url="https://j.example/feed.json")
    a, b = result.entries
    assert a.link == "https://j.example/a" and a.guid == "1" and a.author == "X"
    assert a.published == datetime(2025, 2, 10, 13, 5, tzinfo=timezone.utc)
    assert b.published is None  # far future rejected
    assert b.summary_html == "&lt;b&gt;s&lt;/b&gt;"


# ---------------------------------------------------------------- the fixture site's feeds

EXPECTED = json.loads((SITE / "expected.json").read_text(encoding="utf-8"))


def _site_feed(name: str) -> ParsedFeed:
    data = (SITE / name).read_bytes().replace(b"{BASE}", BASE.encode())
    return parse_feed(data, url=f"{BASE}/{name}", headers={"Content-Type": "application/xml"})


@pytest.mark.parametrize("name,count", [("natowatch.rss", 8), ("ukraineaid.atom", 9), ("foreignpolicy.xml", 8)])
def test_site_feed_entries(name, count):
    result = _site_feed(name)
    assert result.bozo_error is None
    assert len(result.entries) == count
    items = [i for i in EXPECTED["items"] if i["feed"] == name]
    assert [e.title for e in result.entries] == [i["title"] for i in items]
    assert [e.link for e in result.entries] == [i["link"].replace("{BASE}", BASE) for i in items]
    for entry, item in zip(result.entries, items):
        expected = datetime.fromisoformat(item["published"].replace("Z", "+00:00"))
        assert entry.published == expected
        assert entry.guid
    assert result.title and result.title.startswith("Meridian Dispatch")


def test_site_feed_details():
    rss = _site_feed("natowatch.rss")
    assert rss.ttl_minutes == 30 and rss.version == "rss20" and rss.link == f"{BASE}/"
    first = rss.entries[0]
    assert first.author == "Dana Whitfield"
    assert first.summary_html.startswith("<p>In the wake of his re-election")
    assert first.content_html is None
    fp = _site_feed("foreignpolicy.xml")
    assert all(e.content_html and "<p>" in e.content_html for e in fp.entries)
    assert fp.entries[0].link == f"{BASE}/go/fp-settlements"
    atom = _site_feed("ukraineaid.atom")
    assert atom.version == "atom10"


def test_relative_links_resolved_against_feed_url():
    data = b'<rss version="2.0"><channel><link>/</link><item><title>t</title><link>../a/b.html?x=1</link></item></channel></rss>'
    result = parse_feed(data, url="https://news.example/feeds/world/rss.xml")
    assert result.link == "https://news.example/"
    assert result.entries[0].link == "https://news.example/feeds/a/b.html?x=1"


def test_unsafe_links_dropped_and_future_dates_rejected():
    data = (
        b'<rss version="2.0"><channel><item><title>f</title><link>javascript:alert(1)</link>'
        b"<pubDate>Mon, 01 Jan 2100 00:00:00 GMT</pubDate></item>"
        b"<item><title>g</title><link>http://e.example/g</link>"
        b"<pubDate>Wed, 12 Feb 2025 08:00:00 +0100</pubDate></item></channel></rss>"
    )
    f, g = parse_feed(data, url="http://e.example/rss").entries
    assert f.link is None and f.published is None
    assert g.published == datetime(2025, 2, 12, 7, 0, tzinfo=timezone.utc)
    # One day ahead of "now" is tolerated (clock skew, time zones); three days is not.
    soon = b'<rss version="2.0"><channel><item><title>s</title><pubDate>Thu, 13 Feb 2025 08:00:00 GMT</pubDate></item></channel></rss>'
    now = datetime(2025, 2, 12, 8, 0, tzinfo=timezone.utc)
    assert parse_feed(soon, url="http://e.example/", now=now).entries[0].published is not None
    assert parse_feed(soon, url="http://e.example/", now=datetime(2025, 2, 10, tzinfo=timezone.utc)).entries[0].published is None


def test_titles_are_plain_text():
    data = b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; more</title><link href="/x"/></entry></feed>'
    (entry,) = parse_feed(data, url="http://e.example/atom").entries
    assert entry.title == "Bold & more"


# ---------------------------------------------------------------- hostile inputs

RSS_ITEM = '<item><title>t{i}</title><link>/a/{i}</link></item>'


def _rss(items: str, prolog: str = "") -> bytes:
    return f'<?xml version="1.0"?>\n{prolog}<rss version="2.0"><channel><title>c</title>{items}</channel></rss>'.encode()


def _all_text(result: ParsedFeed) -> str:
    parts = [result.title or "", result.link or ""]
    for e in result.entries:
        parts += [e.title, e.link or "", e.guid or "", e.summary_html or "", e.content_html or "", e.author or ""]
    return "\n".join(parts)


def test_xxe_never_reads_local_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for target in (f"file://{secret}", "file:///etc/passwd"):
        data = _rss(
            "<item><title>a &xxe;</title><description>&xxe;</description><link>http://e.example/1</link></item>",
            prolog=f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{target}">]>\n',
        ).replace(b"<title>c</title>", b"<title>&xxe;</title>")
        # Decision: a feed with a DTD is refused; the message never carries the file's content.
        with pytest.raises(FeedParseError, match="DTD") as info:
            parse_feed(data, url="http://e.example/rss")
        assert "TOP-SECRET" not in str(info.value) and "root:" not in str(info.value)


def test_billion_laughs_is_not_expanded():
    decls = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1) if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    data = _rss("<item><title>&lol9;</title><link>/x</link></item>", prolog=f"<!DOCTYPE lolz [{decls}]>\n")
    with pytest.raises(FeedParseError, match="DTD"):
        parse_feed(data, url="http://e.example/rss")


def test_quadratic_blowup_is_not_expanded():
    data = _rss(
        "<item><title>" + "&a;" * 20000 + "</title><link>/x</link></item>",
        prolog='<!DOCTYPE rss [<!ENTITY a "' + "A" * 100_000 + '">]>\n',
    )
    with pytest.raises(FeedParseError, match="DTD"):
        parse_feed(data, url="http://e.example/rss")


@pytest.mark.parametrize(
    "prolog",
    [
        '<!-- <!DOCTYPE x>\n<!ENTITY a "AAAA"> -->\n',  # declarations hidden in a comment
        '<!DOCTYPE rss [ <!ENTITY a "x"',  # never closed
    ],
)
def test_unclear_declarations_are_refused(prolog):
    with pytest.raises(FeedParseError, match="DOCTYPE|ENTITY"):
        parse_feed(_rss("<item><title>&a;</title></item>", prolog=prolog), url="http://e.example/rss")


def test_utf16_feed_with_entity_declarations_is_refused():
    data = '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE r [<!ENTITY a "x">]><rss><channel><item><title>&a;</title></item></channel></rss>'
    with pytest.raises(FeedParseError, match="ENTITY"):
        parse_feed(data.encode("utf-16"), url="http://e.example/rss")


def test_doctype_without_entities_and_markup_in_cdata_are_fine():
    data = _rss(
        "<item><title>x</title><description><![CDATA[<!DOCTYPE html><p>about <!ENTITY x> decls</p>]]></description></item>",
        prolog='<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n',
    )
    result = parse_feed(data, url="http://e.example/rss")
    assert result.bozo_error is None
    assert "about <!ENTITY x> decls" in result.entries[0].summary_html


def test_ten_thousand_entries_are_capped():
    data = _rss("".join(RSS_ITEM.format(i=i) for i in range(10_000)))
    result = parse_feed(data, url="http://e.example/rss")
    assert len(result.entries) == MAX_ENTRIES
    assert result.entries[-1].title == f"t{MAX_ENTRIES - 1}"
    assert "only the first" in result.bozo_error


def test_five_megabyte_title_is_capped():
    data = _rss("<item><title>" + "x" * 5_000_000 + "</title><link>/a</link></item>")
    (entry,) = parse_feed(data, url="http://e.example/rss").entries
    assert len(entry.title) == MAX_TITLE


def test_html_page_instead_of_feed():
    page = b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Hello</p></body></html>"
    with pytest.raises(FeedParseError, match="HTML page"):
        parse_feed(page, url="http://e.example/", headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(FeedParseError, match="HTML page"):
        parse_feed(page, url="http://e.example/")


@pytest.mark.parametrize("body", [b"", b"   \n\t  "])
def test_empty_body(body):
    with pytest.raises(FeedParseError, match="empty"):
        parse_feed(body, url="http://e.example/rss")


def test_binary_junk():
    junk = random.Random(7).randbytes(5000)
    with pytest.raises(FeedParseError, match="not a|binary"):
        parse_feed(junk, url="http://e.example/rss")
    with pytest.raises(FeedParseError):
        parse_feed(b"\x00\x01\x02" * 1000, url="http://e.example/rss")


def test_truncated_xml_keeps_entries_and_reports_bozo():
    full = _rss("".join(RSS_ITEM.format(i=i) for i in range(5)))
    truncated = full[: full.rindex(b"</channel>") - 10]
    result = parse_feed(truncated, url="http://e.example/rss")
    assert result.bozo_error and "XML error" in result.bozo_error
    assert [e.title for e in result.entries][:4] == ["t0", "t1", "t2", "t3"]


def test_truncated_before_any_entry_is_an_error():
    with pytest.raises(FeedParseError, match="no entries"):
        parse_feed(b'<?xml version="1.0"?><rss version="2.0"><channel><title>c</ti', url="http://e.example/rss")


def test_wrong_charset_declaration():
    # Declared UTF-8, actually Latin-1: kept, decoded sensibly, error recorded.
    data = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item><title>naïve café</title><link>/a</link></item></channel></rss>'
    result = parse_feed(data.encode("latin-1"), url="http://e.example/rss")
    assert result.entries[0].title == "naïve café"
    assert result.bozo_error and "encoding" in result.bozo_error


def test_json_that_is_not_a_feed():
    with pytest.raises(FeedParseError, match="not a JSON Feed"):
        parse_feed(b'{"status": "ok"}', url="http://e.example/api", headers={"Content-Type": "application/json"})
    with pytest.raises(FeedParseError, match="invalid JSON"):
        parse_feed(b'{"version": ', url="http://e.example/api", headers={"Content-Type": "application/feed+json"})


def test_non_bytes_input_is_a_clear_error():
    with pytest.raises(FeedParseError, match="expected bytes"):
        parse_feed("<rss/>", url="http://e.example/rss")  # type: ignore[arg-type]


def test_random_mutations_never_crash():
    base = (SITE / "natowatch.rss").read_bytes().replace(b"{BASE}", BASE.encode())
    rng = random.Random(1234)
    for _ in range(60):
        data = bytearray(base)
        for _ in range(rng.randint(1, 30)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        try:
            result = parse_feed(bytes(data[:cut]), url=f"{BASE}/natowatch.rss")
        except FeedParseError:
            continue
        assert isinstance(result, ParsedFeed)

