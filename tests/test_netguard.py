"""Decisions of the address guard. Nothing here connects anywhere: resolvers are stubs."""

from __future__ import annotations

import socket

import pytest

from monitor.net.netguard import (
    BlockedAddressError,
    check_host,
    check_url,
    is_forbidden_ip,
    is_host_allowed,
    parse_allow_hosts,
    parse_ip_literal,
)


def stub_resolver(*ips: str, calls: list[tuple[str, int]] | None = None):
    """A getaddrinfo look-alike answering every name with ``ips``."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        if calls is not None:
            calls.append((host, port))
        out = []
        for ip in ips:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if fam == socket.AF_INET6 else (ip, port)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    return resolve


def no_resolver(*args, **kwargs):
    raise AssertionError("IP literals must be decided without DNS")


PRIVATE_ANSWERS = [
    "10.0.0.5",
    "172.20.1.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "127.0.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
]


@pytest.mark.parametrize("ip", PRIVATE_ANSWERS)
def test_name_resolving_to_forbidden_address_is_refused(ip):
    with pytest.raises(BlockedAddressError) as err:
        check_host("news.example", 80, resolver=stub_resolver(ip))
    assert err.value.reason == "address"
    assert "news.example" in str(err.value)


@pytest.mark.parametrize("ip", PRIVATE_ANSWERS)
def test_url_resolving_to_forbidden_address_is_refused(ip):
    with pytest.raises(BlockedAddressError):
        check_url("https://news.example/feed.xml", resolver=stub_resolver(ip))


@pytest.mark.parametrize(
    "answers",
    [("93.184.216.34", "10.0.0.5"), ("10.0.0.5", "93.184.216.34"), ("2606:2800:220:1::1", "::1")],
)
def test_one_forbidden_answer_among_public_ones_refuses_the_host(answers):
    with pytest.raises(BlockedAddressError) as err:
        check_host("news.example", 443, resolver=stub_resolver(*answers))
    assert any(a in str(err.value) for a in answers if is_forbidden_ip(a))


def test_public_answer_is_allowed_decision_only():
    calls: list[tuple[str, int]] = []
    ips = check_url("http://news.example:8080/rss", resolver=stub_resolver("93.184.216.34", calls=calls))
    assert ips == ["93.184.216.34"]
    assert calls == [("news.example", 8080)]


def test_public_ipv6_answer_is_allowed_and_duplicates_collapse():
    ips = check_host("news.example", 443, resolver=stub_resolver("2606:2800:220:1::1", "2606:2800:220:1::1"))
    assert ips == ["2606:2800:220:1::1"]


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal 127.0.0.1
        "http://0x7f.1/",  # hex + short form
        "http://0x7f000001/",
        "http://0177.0.0.1/",  # octal
        "http://127.1/",
        "http://017700000001/",
        "http://0/",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",  # mapped 169.254.169.254
        "http://127.0.0.1./",
        "HTTP://LOCALHOST.localdomain@127.0.0.1/",  # userinfo must not hide the real host
    ],
)
def test_ip_literals_in_any_spelling_are_refused_without_dns(url):
    with pytest.raises(BlockedAddressError) as err:
        check_url(url, resolver=no_resolver)
    assert err.value.reason == "address"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("[::1]", "::1"),
        ("93.184.216.34", "93.184.216.34"),
        ("news.example", None),
        ("256.1.1.1", None),
        ("1.2.3.4.5", None),
        ("09.1.1.1", None),
        ("0x", "0.0.0.0"),
    ],
)
def test_parse_ip_literal_follows_inet_aton(text, expected):
    ip = parse_ip_literal(text)
    assert (str(ip) if ip is not None else None) == expected


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://example.com/", "javascript:alert(1)", "data:text/plain,hi"])
def test_only_http_and_https_schemes(url):
    with pytest.raises(BlockedAddressError) as err:
        check_url(url, resolver=no_resolver)
    assert err.value.reason == "scheme"
    assert "http" in str(err.value)


@pytest.mark.parametrize("url", ["http:///path", "http://:80/", "https://", "//example.com/x", "not a url"])
def test_url_without_host_is_invalid(url):
    with pytest.raises(BlockedAddressError) as err:
        check_url(url, resolver=no_resolver)
    assert err.value.reason == "invalid"


def test_resolver_failure_is_a_clear_refusal():
    def failing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(BlockedAddressError) as err:
        check_host("nx.example", 80, resolver=failing)
    assert err.value.reason == "invalid"
    assert "cannot resolve" in str(err.value)


def test_empty_resolver_answer_is_refused():
    with pytest.raises(BlockedAddressError):
        check_host("empty.example", 80, resolver=stub_resolver())


def test_without_resolver_names_pass_preflight_unresolved():
    assert check_url("https://news.example/", resolver=None) == []


def test_allow_list_by_ip_allows_that_ip_on_any_port():
    allow = parse_allow_hosts("127.0.0.1")
    assert check_url("http://127.0.0.1:8080/feed", allow_hosts=allow, resolver=no_resolver) == ["127.0.0.1"]
    # A different loopback address is still refused.
    with pytest.raises(BlockedAddressError):
        check_url("http://127.0.0.2:8080/feed", allow_hosts=allow, resolver=no_resolver)


def test_allow_list_matches_the_host_as_written_not_what_a_name_resolves_to():
    # 127.0.0.1 is allowed, but "localhost" is a different host: a name resolving to an
    # allowed IP is not enough (that is exactly what DNS rebinding would exploit).
    with pytest.raises(BlockedAddressError):
        check_host("localhost", 80, allow_hosts=parse_allow_hosts("127.0.0.1"), resolver=stub_resolver("127.0.0.1"))
    assert check_host("localhost", 80, allow_hosts=parse_allow_hosts("localhost"), resolver=stub_resolver("::1", "127.0.0.1")) == [
        "::1",
        "127.0.0.1",
    ]


def test_allow_list_with_port_only_allows_that_port():
    allow = parse_allow_hosts("127.0.0.1:8080")
    assert is_host_allowed("127.0.0.1", 8080, allow)
    assert not is_host_allowed("127.0.0.1", 8081, allow)
    with pytest.raises(BlockedAddressError):
        check_url("http://127.0.0.1:8081/", allow_hosts=allow, resolver=no_resolver)
    with pytest.raises(BlockedAddressError):
        check_url("http://127.0.0.1/", allow_hosts=allow, resolver=no_resolver)


def test_allow_list_parsing_normalises_entries():
    allow = parse_allow_hosts(" 127.0.0.1 , LocalHost.:8080,[0:0::1],, intranet.example ")
    assert allow == frozenset({"127.0.0.1", "localhost:8080", "::1", "intranet.example"})
    assert is_host_allowed("[::1]", 443, allow)
    assert is_host_allowed("INTRANET.example.", None, allow)
    assert parse_allow_hosts(None) == frozenset()
    assert parse_allow_hosts("") == frozenset()


@pytest.mark.parametrize("ip", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_not_forbidden(ip):
    assert not is_forbidden_ip(ip)
