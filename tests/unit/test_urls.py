import pytest

from sparkpilot.errors import InvalidInput
from sparkpilot.urls import check_start_url

ALLOW = ["file:///srv/pages/"]


@pytest.mark.parametrize("url", ["http://example.test/a?b=1", "https://127.0.0.1:8443/", "HTTP://host/"])
def test_web_urls_pass(url: str) -> None:
    assert check_start_url(url, []) == url


@pytest.mark.parametrize(
    "url,code",
    [
        ("file:///etc/passwd", "url_not_allowed"),
        ("javascript:alert(1)", "url_not_allowed"),
        ("ftp://host/file", "url_not_allowed"),
        ("data:text/html,<b>x</b>", "url_not_allowed"),
        ("example.com/page", "invalid_url"),
        ("http:///nohost", "invalid_url"),
        ("file:///srv/pages/../secret.html", "url_not_allowed"),
        ("file:///srv/pagesX/a.html", "url_not_allowed"),
    ],
)
def test_refused_urls_say_why(url: str, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_start_url(url, ALLOW)
    assert exc.value.code == code
    assert exc.value.status_code == 422


def test_allow_listed_file_url_passes_normalized() -> None:
    assert check_start_url("file:///srv/pages/sub/../a.html", ALLOW) == "file:///srv/pages/a.html"
