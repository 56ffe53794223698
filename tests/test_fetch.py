"""Fetcher against the real fixture site server on 127.0.0.1 (tests/siteserver.py).

Only loopback is ever contacted. Stub resolvers here answer with loopback addresses only, so
even a broken guard could not reach another machine.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import tracemalloc
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import quote

import pytest

from monitor.net.fetch import FetchError, Fetcher, FetchPolicy, HostLimiter, parse_retry_after
from tests.siteserver import ETAG_LAST_MODIFIED, ETAG_VALUE, SITE_DIR

ALLOW = frozenset({"127.0.0.1"})


def make_fetcher(**overrides) -> Fetcher:
    settings = dict(
        allow_hosts=ALLOW,
        connect_timeout=5,
        read_timeout=5,
        total_timeout=20,
        min_host_interval=0,
    )
    settings.update(overrides)
    return Fetcher(FetchPolicy(**settings))


@pytest.fixture
def fetcher():
    with make_fetcher() as f:
        yield f


def loopback_resolver(*names: str, ip: str = "127.0.0.1"):
    """Resolve the given names to a loopback IP; any other name is an error."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, f"stub does not know {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    return resolve


def fetch_error(f: Fetcher, url: str, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as err:
        f.fetch(url, **kwargs)
    return err.value


# -- plain fetching --------------------------------------------------------------------


def test_feed_200_utf8_with_base_substituted(fetcher, site_server):
    url = site_server.url("/natowatch.rss?utm_source=x&utm_medium=rss")
    res = fetcher.fetch(url, expect="feed")
    assert res.status == 200
    assert res.url == url and res.final_url == url
    assert res.content_type == "application/rss+xml"
    assert res.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert all(k == k.lower() for k in res.headers)
    text = res.content.decode("utf-8")
    expected = (SITE_DIR / "natowatch.rss").read_text(encoding="utf-8").replace("{BASE}", site_server.base)
    assert text == expected
    assert "{BASE}" not in text and site_server.base in text
    assert not res.not_modified and res.redirects == []
    assert res.elapsed_ms >= 0


def test_article_page_is_html(fetcher, site_server):
    item = json.loads((SITE_DIR / "expected.json").read_text())["items"][0]
    res = fetcher.fetch(item["link"].replace("{BASE}", site_server.base), expect="html")
    assert res.content_type == "text/html"
    assert item["body_first"].strip()[:40] in res.content.decode("utf-8")


def test_site_redirect_is_followed_and_recorded(fetcher, site_server):
    expected = json.loads((SITE_DIR / "expected.json").read_text())["redirects"]["/go/fp-settlements"]
    res = fetcher.fetch(site_server.url("/go/fp-settlements"), expect="html")
    assert res.status == 200
    assert res.final_url == site_server.url(expected)
    assert res.redirects == [site_server.url("/go/fp-settlements")]


def test_user_agent_and_encodings_are_sent(fetcher, site_server):
    site_server.reset_log()
    fetcher.fetch(site_server.url("/ukraineaid.atom"), expect="feed")
    (req,) = site_server.requests.for_path("/ukraineaid.atom")
    assert req.headers["user-agent"] == FetchPolicy().user_agent
    assert req.headers["user-agent"].startswith("newsmon/")
    assert "gzip" in req.headers["accept-encoding"]
    assert "application/atom+xml" in req.headers["accept"]
    assert "if-none-match" not in req.headers


def test_custom_accept_header(fetcher, site_server):
    site_server.reset_log()
    fetcher.fetch(site_server.url("/foreignpolicy.xml"), accept="application/rss+xml")
    (req,) = site_server.requests.for_path("/foreignpolicy.xml")
    assert req.headers["accept"] == "application/rss+xml"


# -- HTTP errors -------------------------------------------------------------------------


def test_404_is_a_hard_error(fetcher, site_server):
    err = fetch_error(fetcher, site_server.url("/bad/404"))
    assert (err.kind, err.status, err.soft) == ("http_status", 404, False)
    assert "404" in str(err) and err.url == site_server.url("/bad/404")


def test_missing_fixture_page_is_404(fetcher, site_server):
    missing = json.loads((SITE_DIR / "expected.json").read_text())["missing"][0]
    err = fetch_error(fetcher, site_server.url(missing))
    assert err.status == 404 and not err.soft


def test_500_is_a_soft_error(fetcher, site_server):
    err = fetch_error(fetcher, site_server.url("/bad/500"))
    assert (err.kind, err.status, err.soft) == ("http_status", 500, True)
    assert err.retry_after is None


def test_connection_refused_is_a_soft_network_error():
    # Grab a free loopback port and close it again, so nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with make_fetcher() as f:
        err = fetch_error(f, f"http://127.0.0.1:{port}/")
    assert (err.kind, err.soft) == ("network", True)


def test_unresolvable_name_is_a_soft_network_error():
    with Fetcher(FetchPolicy(min_host_interval=0), resolver=loopback_resolver()) as f:
        err = fetch_error(f, "http://nx.example/feed")
    assert (err.kind, err.soft) == ("network", True) and "cannot resolve" in str(err)


# -- timeouts ---------------------------------------------------------------------------


def test_slow_headers_hit_the_read_timeout(site_server):
    with make_fetcher(read_timeout=0.5) as f:
        err = fetch_error(f, site_server.url("/bad/slow?delay=5"))
    assert (err.kind, err.soft) == ("timeout", True)


def test_total_timeout_bounds_slow_headers_even_with_a_long_read_timeout(site_server):
    with make_fetcher(read_timeout=60, total_timeout=0.5) as f:
        err = fetch_error(f, site_server.url("/bad/slow?delay=10"))
    assert err.kind == "timeout"
    assert "total timeout" in str(err)


def test_trickle_is_ended_by_the_total_timeout(site_server):
    # Each byte arrives well within the read timeout, so only the total deadline can end this.
    with make_fetcher(read_timeout=10, total_timeout=1.5) as f:
        err = fetch_error(f, site_server.url("/bad/trickle?interval=0.2"))
    assert (err.kind, err.soft) == ("timeout", True)
    assert "total timeout" in str(err)


# -- size caps ---------------------------------------------------------------------------


def test_endless_body_is_capped_while_streaming(site_server):
    with make_fetcher(max_bytes=1_000_000) as f:
        err = fetch_error(f, site_server.url("/bad/huge"))
    assert (err.kind, err.soft) == ("too_large", False)
    assert "1000000" in str(err)


def test_declared_content_length_over_cap_is_refused_before_reading(site_server):
    with make_fetcher(max_bytes=1_000_000) as f:
        err = fetch_error(f, site_server.url("/bad/huge?length=1"))
    assert err.kind == "too_large" and "Content-Length" in str(err)


def test_body_just_under_cap_is_fine(site_server):
    with make_fetcher(max_bytes=100_000) as f:
        res = f.fetch(site_server.url("/bad/huge?bytes=100000"))
    assert len(res.content) == 100_000


def test_gzip_bomb_is_refused_without_inflating_it(site_server):
    bomb = site_server.gzip_bomb()  # build before measuring memory
    assert len(bomb) < 1_000_000
    with make_fetcher(max_bytes=1_000_000) as f:
        tracemalloc.start()
        try:
            err = fetch_error(f, site_server.url("/bad/gzip-bomb"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert err.kind == "too_large" and "decoded" in str(err)
    # Inflating it whole would take 200 MB; a streaming cap stays within a few cap-sized buffers.
    assert peak < 32_000_000


@pytest.mark.parametrize(
    "encoding",
    ["gzip", "deflate-zlib", "deflate-raw"],
)
def test_compressed_bodies_are_decoded(fetcher, site_server, encoding):
    body = (SITE_DIR / "foreignpolicy.xml").read_bytes()
    if encoding == "gzip":
        wire, header = gzip.compress(body), "gzip"
    elif encoding == "deflate-zlib":
        wire, header = zlib.compress(body), "deflate"
    else:
        c = zlib.compressobj(wbits=-15)
        wire, header = c.compress(body) + c.flush(), "deflate"
    url = site_server.add_route(f"/t/enc-{encoding}.xml", 200, {"Content-Type": "text/xml", "Content-Encoding": header}, wire)
    res = fetcher.fetch(url, expect="feed")
    assert res.content == body


def test_corrupt_gzip_is_a_clear_error(fetcher, site_server):
    url = site_server.add_route("/t/corrupt.gz", 200, {"Content-Type": "text/xml", "Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip at all")
    err = fetch_error(fetcher, url)
    assert err.kind == "network" and "gzip" in str(err)


def test_unknown_content_encoding_is_refused(fetcher, site_server):
    url = site_server.add_route("/t/br.xml", 200, {"Content-Type": "text/xml", "Content-Encoding": "br"}, b"\x0b\x02\x80")
    err = fetch_error(fetcher, url)
    assert "Content-Encoding" in str(err)


# -- redirects and the guard -------------------------------------------------------------


def test_redirect_loop_is_capped(site_server):
    site_server.reset_log()
    with make_fetcher(max_redirects=3) as f:
        err = fetch_error(f, site_server.url("/bad/redirect-loop"))
    assert err.kind == "too_many_redirects" and not err.soft
    assert site_server.requests.count("/bad/redirect-loop") == 4  # the original + 3 followed


def test_relative_and_absolute_redirects(fetcher, site_server):
    url = site_server.url("/bad/redirect-to?location=" + quote("/natowatch.rss"))
    res = fetcher.fetch(url)
    assert res.final_url == site_server.url("/natowatch.rss") and res.redirects == [url]


def redirect_to(site_server, target: str) -> str:
    return site_server.url("/bad/redirect-to?location=" + quote(target, safe=""))


def test_redirect_to_other_loopback_ip_is_blocked(fetcher, site_server):
    err = fetch_error(fetcher, redirect_to(site_server, f"http://127.0.0.2:{site_server.port}/natowatch.rss"))
    assert (err.kind, err.soft) == ("blocked", False)
    assert "127.0.0.2" in str(err)


def test_redirect_to_localhost_is_blocked_when_only_the_ip_is_allowed(fetcher, site_server):
    err = fetch_error(fetcher, redirect_to(site_server, f"http://localhost:{site_server.port}/natowatch.rss"))
    assert err.kind == "blocked" and "localhost" in str(err)


def test_redirect_to_localhost_is_followed_when_allowed(site_server):
    with make_fetcher(allow_hosts=frozenset({"127.0.0.1", "localhost"})) as f:
        res = f.fetch(redirect_to(site_server, f"http://localhost:{site_server.port}/natowatch.rss"), expect="feed")
    assert res.status == 200
    assert res.final_url == f"http://localhost:{site_server.port}/natowatch.rss"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1:70/"])
def test_redirect_to_non_http_scheme_is_blocked(fetcher, site_server, target):
    err = fetch_error(fetcher, redirect_to(site_server, target))
    assert err.kind == "blocked" and "scheme" in str(err)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/pub", "gopher://127.0.0.1/"])
def test_non_http_schemes_are_refused(fetcher, url):
    err = fetch_error(fetcher, url)
    assert err.kind in ("blocked", "invalid_url") and not err.soft


@pytest.mark.parametrize("url", ["not a url", "http:///nohost", "http://[::1/"])
def test_malformed_urls_are_invalid(fetcher, url):
    assert fetch_error(fetcher, url).kind == "invalid_url"


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://[::1]/", "http://127.0.0.2/"])
def test_loopback_literals_are_blocked_without_an_allow_list(url):
    with make_fetcher(allow_hosts=frozenset()) as f:
        assert fetch_error(f, url).kind == "blocked"


def test_guard_runs_at_connect_time_on_the_resolved_address(site_server_fresh):
    # A name that passes the pre-flight check but resolves to loopback (DNS rebinding shape).
    url = f"http://rebind.example:{site_server_fresh.port}/natowatch.rss"
    with Fetcher(FetchPolicy(allow_hosts=ALLOW, min_host_interval=0), resolver=loopback_resolver("rebind.example")) as f:
        err = fetch_error(f, url)
    assert err.kind == "blocked" and "rebind.example" in str(err)
    assert len(site_server_fresh.requests) == 0  # refused before any connection


def test_redirect_to_a_name_resolving_to_loopback_is_blocked(site_server_fresh):
    target = f"http://rebind.example:{site_server_fresh.port}/natowatch.rss"
    with Fetcher(FetchPolicy(allow_hosts=ALLOW, min_host_interval=0), resolver=loopback_resolver("rebind.example")) as f:
        err = fetch_error(f, redirect_to(site_server_fresh, target))
    assert err.kind == "blocked"
    assert [r.path for r in site_server_fresh.requests] == ["/bad/redirect-to"]


def test_connects_to_the_vetted_ip_and_keeps_the_host_header(site_server_fresh):
    port = site_server_fresh.port
    policy = FetchPolicy(allow_hosts=frozenset({"news.example"}), min_host_interval=0)
    with Fetcher(policy, resolver=loopback_resolver("news.example")) as f:
        res = f.fetch(f"http://news.example:{port}/ukraineaid.atom", expect="feed")
    assert res.status == 200
    (req,) = site_server_fresh.requests.for_path("/ukraineaid.atom")
    assert req.headers["host"] == f"news.example:{port}"


# -- content types ---------------------------------------------------------------------


def test_image_is_rejected_when_a_feed_is_expected(fetcher, site_server):
    err = fetch_error(fetcher, site_server.url("/bad/wrong-type"), expect="feed")
    assert (err.kind, err.soft) == ("content_type", False) and "image/png" in str(err)
    err = fetch_error(fetcher, site_server.url("/bad/wrong-type"), expect="html")
    assert err.kind == "content_type"


def test_any_accepts_anything(fetcher, site_server):
    res = fetcher.fetch(site_server.url("/bad/wrong-type"), expect="any")
    assert res.content_type == "image/png" and res.content.startswith(b"\x89PNG")


FEED = (SITE_DIR / "natowatch.rss").read_bytes()


@pytest.mark.parametrize(
    "ctype",
    [
        "text/xml",
        "application/xml; charset=iso-8859-1",
        "application/rss+xml",
        "application/atom+xml",
        "text/html; charset=utf-8",  # feeds that lie
        "text/plain",
        "application/octet-stream",  # text body: accepted
        None,
    ],
)
def test_messy_feed_content_types_are_accepted(fetcher, site_server, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    if ctype is None:
        headers = {"Content-Type": ""}
    url = site_server.add_route(f"/t/ctype-{abs(hash(ctype))}.rss", 200, headers, FEED)
    res = fetcher.fetch(url, expect="feed")
    assert res.content == FEED


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
        ("audio/mpeg", b"ID3\x03\x00\x00\x00"),
        ("application/pdf", b"%PDF-1.7\n"),
        ("application/octet-stream", b"\x00\x01\x02\x03binary\x00\xff" * 20),
        ("text/xml", b"%PDF-1.4 mislabelled"),
        ("", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20),
    ],
)
def test_clearly_wrong_content_is_rejected(fetcher, site_server, ctype, body):
    url = site_server.add_route(f"/t/wrong-{abs(hash((ctype, body)))}", 200, {"Content-Type": ctype}, body)
    err = fetch_error(fetcher, url, expect="feed")
    assert err.kind == "content_type"


# -- conditional GET ---------------------------------------------------------------------


def test_etag_round_trip_gives_not_modified(fetcher, site_server):
    url = site_server.url("/bad/etag")
    first = fetcher.fetch(url, expect="feed")
    assert first.status == 200 and first.etag == ETAG_VALUE and first.last_modified == ETAG_LAST_MODIFIED
    site_server.reset_log()
    second = fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified, expect="feed")
    assert (second.status, second.not_modified, second.content) == (304, True, b"")
    (req,) = site_server.requests.for_path("/bad/etag")
    assert req.headers["if-none-match"] == ETAG_VALUE
    assert req.headers["if-modified-since"] == ETAG_LAST_MODIFIED


def test_last_modified_alone_gives_not_modified(fetcher, site_server):
    res = fetcher.fetch(site_server.url("/bad/etag"), last_modified=ETAG_LAST_MODIFIED)
    assert res.not_modified and res.status == 304


def test_stale_etag_gets_the_full_body(fetcher, site_server):
    res = fetcher.fetch(site_server.url("/bad/etag"), etag='"old"')
    assert res.status == 200 and not res.not_modified and res.content


# -- Retry-After -------------------------------------------------------------------------


def test_429_retry_after_seconds(fetcher, site_server):
    err = fetch_error(fetcher, site_server.url("/bad/retry-after?status=429&after=120"))
    assert (err.kind, err.status, err.retry_after, err.soft) == ("http_status", 429, 120.0, True)


def test_503_retry_after_http_date(fetcher, site_server):
    when = datetime.now(timezone.utc) + timedelta(seconds=600)
    after = quote(format_datetime(when, usegmt=True))
    err = fetch_error(fetcher, site_server.url(f"/bad/retry-after?status=503&after={after}"))
    assert err.status == 503 and err.soft
    assert err.retry_after is not None and 0 < err.retry_after <= 600


def test_retry_after_is_capped_by_policy(site_server):
    with make_fetcher(max_retry_after=300) as f:
        err = fetch_error(f, site_server.url("/bad/retry-after?status=429&after=999999"))
    assert err.retry_after == 300


def test_garbage_retry_after_is_ignored(fetcher, site_server):
    err = fetch_error(fetcher, site_server.url("/bad/retry-after?status=429&after=soon"))
    assert err.status == 429 and err.retry_after is None


def test_parse_retry_after_forms():
    now = datetime(2025, 2, 12, 8, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", cap=3600, now=now) == 120
    assert parse_retry_after("Wed, 12 Feb 2025 08:05:00 GMT", cap=3600, now=now) == 300
    assert parse_retry_after("Wed, 12 Feb 2025 07:00:00 GMT", cap=3600, now=now) == 0  # past
    assert parse_retry_after("Thu, 13 Feb 2025 08:00:00 GMT", cap=3600, now=now) == 3600  # capped
    assert parse_retry_after("-5", cap=3600, now=now) == 0
    assert parse_retry_after("nan", cap=3600, now=now) is None
    assert parse_retry_after("", cap=3600, now=now) is None
    assert parse_retry_after(None, cap=3600, now=now) is None


# -- politeness --------------------------------------------------------------------------


def test_per_host_concurrency_is_never_exceeded(site_server_fresh):
    errors: list[BaseException] = []
    statuses: list[int] = []
    with make_fetcher(per_host_concurrency=2, min_host_interval=0) as f:

        def worker(i: int) -> None:
            try:
                statuses.append(f.fetch(site_server_fresh.url(f"/bad/slow?delay=0.3&i={i}")).status)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert statuses == [200] * 8
    assert site_server_fresh.requests.count("/bad/slow") == 8
    assert 1 <= site_server_fresh.requests.max_in_flight("/bad/slow") <= 2


def test_host_limiter_spaces_starts_per_host():
    now = [100.0]
    slept: list[float] = []
    limiter = HostLimiter(5, 0.5, clock=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        assert limiter.acquire("a.example")
    assert limiter.acquire("b.example")  # another host is not delayed
    assert slept == [0.5, 1.0]  # first start is immediate
    now[0] += 10  # long after: no wait
    assert limiter.acquire("a.example")
    assert slept == [0.5, 1.0]


def test_host_limiter_caps_slots_per_host():
    limiter = HostLimiter(2, 0, sleep=lambda s: None)
    assert limiter.acquire("a.example") and limiter.acquire("a.example")
    assert not limiter.acquire("a.example", timeout=0)
    assert limiter.acquire("b.example", timeout=0)
    limiter.release("a.example")
    assert limiter.acquire("a.example", timeout=0)


def test_fetcher_is_reusable_across_threads_and_closes(site_server):
    f = make_fetcher()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(f.fetch(site_server.url("/natowatch.rss")).status)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    f.close()
    assert results == [200] * 4
