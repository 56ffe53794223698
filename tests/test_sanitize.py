"""The one HTML sanitiser: hostile markup from feeds and pages comes out inert, safe markup survives."""

from __future__ import annotations

import html as html_lib

import lxml.html
import pytest

from monitor.stages.sanitize import html_to_text, sanitize_html, text_to_html

FORBIDDEN_TAGS = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math",
                  "img", "form", "input", "button", "textarea", "select", "link", "meta", "base", "noscript",
                  "template", "video", "audio", "source"}
SAFE_SCHEMES = ("http://", "https://", "mailto:", "/", "#")


def assert_inert(out: str) -> None:
    """What a browser would build from `out` runs nothing and loads nothing."""
    if not out.strip():
        return
    root = lxml.html.fragment_fromstring(out, create_parent="div")
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        assert el.tag not in FORBIDDEN_TAGS, (el.tag, out)
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (name, out)
            assert name.lower() not in ("style", "src", "srcset", "action", "formaction", "background"), (name, out)
            if name.lower() in ("href", "xlink:href"):
                assert value.strip().lower().startswith(SAFE_SCHEMES), (value, out)


HOSTILE = {
    "script": '<p>a</p><script>alert(1)</script><p>b</p>',
    "script, upper case": '<SCRIPT SRC=//evil.example/x.js></SCRIPT>',
    "script split by a script": '<scr<script>ipt>alert(1)</script>',
    "event handlers": '<p onclick="alert(1)" onmouseover=alert(2)>p</p><body onload=alert(3)>',
    "handler on a link": '<a href="https://x.org/" onfocus="alert(1)" autofocus>l</a>',
    "image onerror": '<img src=x onerror=alert(1)>',
    "javascript: link": '<a href="javascript:alert(1)">x</a>',
    "javascript: mixed case and space": '<a href=" JaVaScRiPt:alert(1)">x</a>',
    "javascript: hex entity": '<a href="jav&#x61;script:alert(1)">x</a>',
    "javascript: decimal entities, no semicolons": (
        '<a href="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112'
        '&#0000116&#0000058alert(1)">z</a>'),
    "javascript: tab inside": '<a href="java&#9;script:alert(1)">x</a>',
    "javascript: newline inside": '<a href="java\nscript:alert(1)">x</a>',
    "vbscript: link": '<a href="vbscript:msgbox(1)">x</a>',
    "data: link": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">d</a>',
    "style element": '<style>body{background:url(javascript:alert(1))}</style>text',
    "style attribute": '<p style="background:url(javascript:alert(1));position:fixed">p</p>',
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "iframe srcdoc": '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    "object and embed": '<object data="x.swf"><embed src="x.swf"></object>',
    "svg with script": '<svg><script>alert(1)</script></svg>',
    "svg onload": '<svg onload=alert(1)>',
    "math mXSS": '<math><mi><mglyph><style><img src=x onerror=alert(1)>',
    "noscript mXSS": '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "form action": '<form action="javascript:alert(1)"><button>go</button></form>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base href": '<base href="https://evil.example/"><a href="/x">x</a>',
    "comment hiding a script": '<!--[if gte IE 4]><script>alert(1)</script><![endif]-->c',
    "unclosed attribute quote": '<a href="https://x.org/ onmouseover="alert(1)">x</a>',
    "nested malformed": '<div><p><b>bold<i>x</div></p><<script>script>alert(1)//<</script>/script>',
    "table soup": '<table><td><script>alert(1)</script><tr><td>c</table></td>',
    "template": '<template><script>alert(1)</script></template>',
}


@pytest.mark.parametrize("markup", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markup_comes_out_inert(markup):
    out = sanitize_html(markup)
    assert_inert(out)
    # Stable: a second pass changes nothing, so no markup re-forms when the output is parsed again.
    assert sanitize_html(out) == out


def test_script_and_style_content_is_dropped_not_shown():
    out = sanitize_html("<p>a</p><script>var secret = 1;</script><style>.x{}</style><p>b</p>")
    assert out == "<p>a</p><p>b</p>"


def test_escaped_markup_stays_escaped_text():
    out = sanitize_html("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert out == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert_inert(out)


def test_safe_markup_survives():
    markup = ('<p>Allies met in <a href="https://nato.int/summit" title="The summit">The Hague</a>, '
              '<strong>agreeing</strong> a <em>5%</em> goal.</p>'
              '<blockquote><p>“We will pay.”</p></blockquote>'
              '<ul><li>one</li><li>two</li></ul>'
              '<h2>Numbers</h2><table><thead><tr><th scope="col">Country</th></tr></thead>'
              '<tbody><tr><td>Poland</td></tr></tbody></table>'
              '<p><time datetime="2025-06-25">25 June</time> <abbr title="North Atlantic Treaty Organization">NATO</abbr>'
              ' <a href="mailto:desk@example.org">write</a> <a href="/relative/path">more</a></p>')
    out = sanitize_html(markup)
    assert_inert(out)
    for kept in ('href="https://nato.int/summit"', 'title="The summit"', "<strong>agreeing</strong>", "<em>5%</em>",
                 "<blockquote>", "<li>two</li>", "<h2>Numbers</h2>", '<th scope="col">Country</th>',
                 '<time datetime="2025-06-25">', 'title="North Atlantic Treaty Organization"',
                 'href="mailto:desk@example.org"', 'href="/relative/path"', "“We will pay.”"):
        assert kept in out, (kept, out)
    # Every kept link is marked so the page we render it on leaks nothing to it.
    assert out.count('rel="noopener noreferrer nofollow"') == out.count("<a ")


def test_unclosed_markup_is_balanced():
    assert sanitize_html("<p><b>bold<i>x") == "<p><b>bold<i>x</i></b></p>"


def test_images_are_dropped_as_tracking_pixels():
    assert sanitize_html('<p>a<img src="https://t.example/pixel.gif" width=1 height=1>b</p>') == "<p>ab</p>"


@pytest.mark.parametrize("empty", [None, ""])
def test_nothing_in_nothing_out(empty):
    assert sanitize_html(empty) == "" and html_to_text(empty) == ""


def test_html_to_text_keeps_paragraphs_and_drops_code():
    text = html_to_text("<p>First &amp; foremost.</p><script>alert(1)</script><style>p{}</style>"
                        "<div>Second<br>line</div><iframe>frame text</iframe>")
    assert text == "First & foremost.\nSecond\nline"


def test_html_to_text_of_broken_markup_still_gives_the_words():
    assert "allies met" in html_to_text("<p>allies met<b><i></p></div></span>")
    assert html_to_text("plain &amp; simple") == "plain & simple"


def test_text_to_html_escapes_everything():
    out = text_to_html('<script>alert(1)</script>\n\n"quoted" & more')
    assert out == f"<p>{html_lib.escape('<script>alert(1)</script>')}</p>\n<p>&quot;quoted&quot; &amp; more</p>"
    assert_inert(out)
