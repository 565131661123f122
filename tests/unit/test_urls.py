"""Where the browser may go, judged as Chromium reads a URL (WHATWG), not as Python's urlsplit does."""

import pytest

from sparkpilot.errors import InvalidInput
from sparkpilot.urls import check_start_url, host_of, navigation_refusal, url_allowed


@pytest.mark.parametrize("url", ["http://example.test/a?b=1", "https://127.0.0.1:8443/", "HTTP://host/"])
def test_web_urls_pass(url: str) -> None:
    assert check_start_url(url) == url
    assert navigation_refusal(url) is None


@pytest.mark.parametrize(
    "url,code",
    [
        ("file:///etc/passwd", "url_not_allowed"),
        ("FILE:///etc/passwd", "url_not_allowed"),
        ("file://127.0.0.1/etc/os-release", "url_not_allowed"),
        ("file://localhost\\@127.0.0.1/../etc/hostname", "url_not_allowed"),
        (" file:///etc/passwd", "url_not_allowed"),  # leading space: browsers strip it
        ("view-source:file:///etc/passwd", "url_not_allowed"),
        ("filesystem:http://example.test/temporary/x", "url_not_allowed"),
        ("chrome://settings", "url_not_allowed"),
        ("javascript:alert(1)", "url_not_allowed"),
        ("ftp://host/file", "url_not_allowed"),
        ("data:text/html,<b>x</b>", "url_not_allowed"),
        ("example.com/page", "invalid_url"),
        ("not a url", "invalid_url"),
    ],
)
def test_refused_urls_say_why(url: str, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_start_url(url)
    assert exc.value.code == code
    assert exc.value.status_code == 422
    assert navigation_refusal(url) is not None


def test_about_blank_is_the_one_other_page() -> None:
    assert navigation_refusal("about:blank") is None
    assert navigation_refusal("about:version") is not None


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:8000\\@example.com/x", False),  # Chromium goes to 127.0.0.1, not example.com
    ("http://example.com\\@evil.test/", True),  # ...and here to example.com
    ("http://evil.test/?example.com", False),
    ("http://EXAMPLE.com./a", True),
    ("http://shop.example.com/", True),
    ("http://notexample.com/", False),
    ("file:///example.com", False),
])
def test_allowed_domains_are_judged_on_the_host_chromium_contacts(url: str, allowed: bool) -> None:
    assert url_allowed(url, ["example.com"]) is allowed


def test_prefix_rules_compare_canonical_urls() -> None:
    assert url_allowed("http://docs.test/a/../guide/x", ["http://docs.test/guide/"])
    assert not url_allowed("http://docs.test/guide/../secret", ["http://docs.test/guide/"])


def test_no_domains_allow_nothing_and_a_star_allows_every_site() -> None:
    assert not url_allowed("http://anything.test/", [])  # the safe default: never "everything"
    assert url_allowed("http://anything.test/", ["*"]) and url_allowed("https://x.y.test/p", ["other.test", "*"])


def test_host_of() -> None:
    assert host_of("http://127.0.0.1:8000\\@example.com/") == "127.0.0.1"
    assert host_of("http://bücher.test/") == "xn--bcher-kva.test"
    assert host_of("http://[::1]:80/") == "::1"
    assert host_of("nonsense") == ""
