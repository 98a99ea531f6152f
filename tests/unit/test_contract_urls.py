"""The one URL rule (checkout_contract.urls): its function and its CRD pattern agree."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from checkout_contract import payments, urls

ACCEPTED = [
    "https://api.stripe.com",
    "https://checkout-live.adyen.com/v71/payments",
    "https://gw.eu.example:8443/?a=b#c",
    "http://127.0.0.1",
    "http://127.0.0.1:12111/v1",
    "http://127.255.0.1:9",
    "http://[::1]:8080/x",
    "http://localhost:4318",
]
REFUSED = {
    "http://api.stripe.com": "http",
    "http://10.1.2.3:8080": "http",
    "http://127.0.0.1.nip.io": "http",
    "http://localhost.example.com": "http",
    "http://[::2]:80": "http",
    "ftp://files.example.com": "https",
    "api.stripe.com": "https",
    "https://u:p@api.stripe.com": "user information",
    "https://u@api.stripe.com": "user information",
    "http://u:p@127.0.0.1": "user information",
    "https://": "host",
    "https://api.stripe.com/a b": "white space",
    "HTTPS://API.STRIPE.COM": "https",
}


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted(url: str) -> None:
    assert urls.problem(url) is None
    assert re.fullmatch(urls.PATTERN, url)


@pytest.mark.parametrize(("url", "says"), REFUSED.items())
def test_refused_saying_why_without_quoting(url: str, says: str) -> None:
    wrong = urls.problem(url)
    assert wrong is not None
    assert says in wrong
    assert url not in wrong
    assert not re.fullmatch(urls.PATTERN, url)


def test_a_port_out_of_range_is_refused_by_the_function() -> None:
    # the pattern cannot count to 65535; the operator's and the CLI's check can
    assert urls.problem("https://api.stripe.com:99999") == "is not a valid URL (bad host or port)"


def test_the_stricter_rule_refuses_loopback_http() -> None:
    assert urls.problem("http://127.0.0.1:9", allow_loopback_http=False) == (
        "must be an https:// URL"
    )
    assert urls.problem("https://gw.example", allow_loopback_http=False) is None


@given(st.text(alphabet="htps:/@[]:.1270lcoaxyz?#%", max_size=40))
def test_the_function_never_accepts_what_the_pattern_refuses(url: str) -> None:
    if urls.problem(url) is None:
        assert re.fullmatch(urls.PATTERN, url)


def test_the_payments_service_checks_its_psp_endpoints_again() -> None:
    """The routing file the payments service loads (rendered, or hand-written, or stale)."""
    provider = {
        "name": "stripe-eu",
        "type": "stripe",
        "account": "acct",
        "credentials_dir": "/etc/checkout/psp-credentials/stripe-eu",
    }
    assert payments.Provider.model_validate({**provider, "endpoint": "https://api.stripe.com"})
    assert payments.Provider.model_validate({**provider, "endpoint": "http://127.0.0.1:12111"})
    for bad in ("http://api.stripe.com", "https://sk_live_x@api.stripe.com"):
        with pytest.raises(ValidationError) as exc:
            payments.Provider.model_validate({**provider, "endpoint": bad})
        assert "endpoint" in str(exc.value)
