"""OPML import/export of feed lists."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from monitor.config import FeedConfig, load_feeds_config
from monitor.stages.opml import OpmlError, export_opml, import_opml

SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="BBC World" title="BBC News - World" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml" htmlUrl="https://www.bbc.co.uk/news/world"/>
      <outline type="rss" text="Guardian" xmlUrl="https://www.theguardian.com/world/rss"/>
      <outline type="rss" text="dup" xmlUrl="https://www.theguardian.com/world/rss"/>
    </outline>
    <outline type="link" text="Just a link" url="https://example.org/"/>
    <outline type="rss" text="Gopher" xmlUrl="gopher://old.example/feed"/>
    <outline type="rss" text="No title" xmlUrl="http://plain.example/feed.xml"/>
  </body>
</opml>
"""


def test_import_nested_outlines_in_order():
    feeds = import_opml(SAMPLE)
    assert [f.url for f in feeds] == [
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        "https://www.theguardian.com/world/rss",
        "http://plain.example/feed.xml",
    ]
    assert feeds[0].name == "BBC News - World"  # title preferred over text
    assert feeds[1].name == "Guardian"
    assert all(isinstance(f, FeedConfig) and f.enabled for f in feeds)


def test_export_then_import_roundtrip():
    feeds = [
        FeedConfig(url="https://a.example/rss?x=1&y=2", name='A "quoted" <feed>', topics_hint=["nato", "ukraine-aid"]),
        FeedConfig(url="https://b.example/atom", enabled=False),
    ]
    text = export_opml(feeds, now=datetime(2025, 2, 12, tzinfo=timezone.utc))
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert 'version="2.0"' in text and "Wed, 12 Feb 2025" in text
    back = import_opml(text)
    assert [(f.url, f.name, f.topics_hint, f.enabled) for f in back] == [
        ("https://a.example/rss?x=1&y=2", 'A "quoted" <feed>', ["nato", "ukraine-aid"], True),
        ("https://b.example/atom", "https://b.example/atom", [], False),
    ]


def test_export_default_feeds_roundtrip(tmp_path):
    from pathlib import Path

    cfg = load_feeds_config(Path(__file__).resolve().parents[1] / "feeds.yaml")
    back = import_opml(export_opml(cfg.feeds))
    assert [f.url for f in back] == [f.url for f in cfg.feeds]
    assert [f.topics_hint for f in back] == [f.topics_hint for f in cfg.feeds]


@pytest.mark.parametrize(
    "data,fragment",
    [
        (b"", "empty"),
        (b"<opml><body><outline", "not well-formed XML at line 1"),
        (b"<rss><channel/></rss>", "root element is <rss>"),
        (b'<opml version="2.0"><head/></opml>', "no <body>"),
        (b'<opml version="2.0"><body><outline text="folder"/></body></opml>', "contains no feed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b'<opml><body><outline xmlUrl="https://a.example/&xxe;"/></body></opml>',
            "unsafe XML refused",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<opml><body><outline xmlUrl="https://a.example/&b;"/></body></opml>',
            "unsafe XML refused",
        ),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not well-formed XML"),
    ],
)
def test_import_errors_are_clear(data, fragment):
    with pytest.raises(OpmlError) as err:
        import_opml(data)
    assert fragment in str(err.value)


def test_import_accepts_str_and_case_variants():
    text = '<opml version="2.0"><body><outline TEXT="x" xmlurl="https://c.example/feed"/></body></opml>'
    (feed,) = import_opml(text)
    assert feed.url == "https://c.example/feed" and feed.name == "x"
