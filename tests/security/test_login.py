"""The login form: throttled per username and per client IP (django-axes)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ATTACKER_IP = "203.0.113.7"


def attempt(client: Client, username: str, password: str, ip: str):
    return client.post(LOGIN, {"username": username, "password": password, "next": ""}, REMOTE_ADDR=ip)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_it_logs_in_with_the_right_password(client, user) -> None:
    response = attempt(client, "alice", "alice-password-123", "198.51.100.1")
    assert response.status_code == 302 and response["Location"] == reverse("jobs") and logged_in(client)


def test_it_locks_a_username_out_after_repeated_wrong_passwords(client, user, other_user) -> None:
    for _ in range(30):
        assert not logged_in(client)
        attempt(client, "alice", "guess-123456", ATTACKER_IP)
    right = attempt(client, "alice", "alice-password-123", ATTACKER_IP)
    assert right.status_code == 429 and not logged_in(client)
    html = right.content.decode()
    assert "Too many failed login attempts" in html and "15 minutes" in html and 'name="password"' in html
    # Per username: the right password from another address does not get in either.
    elsewhere = Client()
    assert attempt(elsewhere, "alice", "alice-password-123", "198.51.100.20").status_code == 429
    assert not logged_in(elsewhere)
    # Another user from another address is unaffected.
    bystander = Client()
    ok = attempt(bystander, "mallory", "mallory-password-123", "198.51.100.30")
    assert ok.status_code == 302 and logged_in(bystander)


def test_it_locks_an_address_out_after_failures_across_usernames(client, user, other_user) -> None:
    for n in range(10):
        attempt(client, f"user{n}", "guess-123456", ATTACKER_IP)
    # Per IP: a correct password for an untouched username from that address is refused.
    refused = attempt(client, "mallory", "mallory-password-123", ATTACKER_IP)
    assert refused.status_code == 429 and not logged_in(client)
    other = Client()
    assert attempt(other, "mallory", "mallory-password-123", "198.51.100.40").status_code == 302


def test_it_forgets_earlier_failures_after_a_success(client, user) -> None:
    for _ in range(4):
        attempt(client, "alice", "guess-123456", "198.51.100.50")
    assert attempt(client, "alice", "alice-password-123", "198.51.100.50").status_code == 302
    client.post(reverse("logout"))
    for _ in range(4):
        attempt(client, "alice", "guess-123456", "198.51.100.50")
    assert attempt(client, "alice", "alice-password-123", "198.51.100.50").status_code == 302


def test_client_login_still_works_with_a_request(client, user) -> None:
    from django.test import RequestFactory

    assert client.login(request=RequestFactory().get("/"), username="alice", password="alice-password-123")


def test_it_counts_the_address_the_trusted_proxy_saw(settings, rf) -> None:
    from ml_platform.web.auth import client_ip

    spoofed = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
    assert client_ip(spoofed) == "10.0.0.1"  # no proxy configured: the header is the client's word
    settings.LOGIN_TRUSTED_PROXIES = 1
    assert client_ip(spoofed) == "198.51.100.9"  # what our one proxy appended, not what the client sent


def test_a_locked_out_api_request_gets_json(rf) -> None:
    import json

    from ml_platform.web.auth import lockout_response

    response = lockout_response(rf.post("/api/etl/jobs/"), None, {"username": "alice"})
    body = json.loads(response.content)
    assert response.status_code == 429 and body["status"] == "error" and "Too many failed" in body["message"]
