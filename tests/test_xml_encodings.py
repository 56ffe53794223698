"""A DTD is refused whatever the encoding: EBCDIC, UTF-16 and UTF-32 billion laughs, feeds and OPML."""

from __future__ import annotations

import pytest

from monitor.stages.opml import OpmlError, import_opml
from monitor.stages.parse import FeedParseError, parse_feed

LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1) if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
ITEM = "<item><title>&lol9;</title><link>http://e.example/1</link></item>"


def _feed(encoding_decl: str, dtd: bool = True) -> str:
    prolog = f'<?xml version="1.0" encoding="{encoding_decl}"?>\n' if encoding_decl else ""
    doctype = f"<!DOCTYPE rss [{LAUGHS}]>\n" if dtd else ""
    item = ITEM if dtd else "<item><title>Allies meet</title><link>http://e.example/1</link></item>"
    return f'{prolog}{doctype}<rss version="2.0"><channel><title>c</title>{item}</channel></rss>'


# (declared encoding, Python codec the bytes are written in, with a BOM?)
CASES = [
    ("cp037", "cp037", False),
    ("IBM037", "cp037", False),
    ("cp500", "cp500", False),
    ("utf-16", "utf-16", True),          # BOM + native order
    ("utf-16", "utf-16-be", False),      # no BOM: told by the first bytes
    ("utf-16", "utf-16-le", False),
    ("utf-32", "utf-32", True),
    ("utf-32", "utf-32-be", False),
    ("utf-32", "utf-32-le", False),
    ("", "utf-16", True),                # no declaration at all, only the BOM
]


@pytest.mark.parametrize("declared, codec, _bom", CASES, ids=[f"{d or 'nodecl'}-{c}" for d, c, _ in CASES])
def test_billion_laughs_refused_in_any_encoding(declared, codec, _bom):
    data = _feed(declared).encode(codec)
    assert b"<!ENTITY" not in data or codec.startswith("utf-8")  # invisible to a byte scan
    with pytest.raises(FeedParseError, match="DTD") as info:
        parse_feed(data, url="http://e.example/rss")
    assert "lollol" not in str(info.value)


def test_a_dtd_declared_only_by_the_http_charset_is_refused():
    data = _feed("", dtd=True).encode("cp037")
    with pytest.raises(FeedParseError, match="DTD"):
        parse_feed(data, url="http://e.example/rss", headers={"Content-Type": "application/rss+xml; charset=cp037"})


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_wide_feeds_without_a_dtd_still_parse(codec):
    result = parse_feed(_feed(codec, dtd=False).encode(codec), url="http://e.example/rss")
    assert [e.title for e in result.entries] == ["Allies meet"]


@pytest.mark.parametrize("codec", ["cp037", "utf-16", "utf-32-le"])
def test_opml_with_a_dtd_is_refused_in_any_encoding(codec):
    doc = (f'<?xml version="1.0" encoding="{codec.split("-le")[0]}"?><!DOCTYPE opml [{LAUGHS}]>'
           '<opml version="2.0"><body><outline text="&lol9;" xmlUrl="https://e.example/rss"/></body></opml>')
    with pytest.raises(OpmlError, match="DTD"):
        import_opml(doc.encode(codec))


def test_opml_without_a_dtd_in_utf16_imports():
    doc = ('<?xml version="1.0" encoding="utf-16"?><opml version="2.0"><body>'
           '<outline text="E" xmlUrl="https://e.example/rss"/></body></opml>')
    assert [f.url for f in import_opml(doc.encode("utf-16"))] == ["https://e.example/rss"]
