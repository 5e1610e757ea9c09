"""The scrubber: configured secrets by value, unknown keys by shape, the rest of the text kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occ.core.scrub import MASK, Scrubber, looks_like_key

SECRET = "my-provider-key-0123456789"


def test_a_configured_secret_is_masked_and_the_words_around_it_stay():
    """Upstream text stays useful: only the key goes."""
    scrubber = Scrubber([SECRET])
    assert scrubber.scrub(f"Incorrect API key provided: {SECRET}. See docs.") == (
        f"Incorrect API key provided: {MASK}. See docs.")


@pytest.mark.parametrize(("text", "expected"), [
    ("Incorrect API key provided: sk-proj-abcdEFGH1234", f"Incorrect API key provided: {MASK}"),
    ("key AIzaSyA-1234567890abcdefghijklmnop is invalid", f"key {MASK} is invalid"),
    ("got header Authorization: Bearer tok_9f8e7d6c5b", f"got header Authorization: Bearer {MASK}"),
    ('{"authorization": "Bearer abc123def456"}', f'{{"authorization": "Bearer {MASK}"}}'),
    ("bearer eyJhbGciOiJIUzI1NiJ9.x.y rejected", f"bearer {MASK} rejected"),
    ("GET /v1beta/models/g:generate?alt=sse&key=AbCdEf123456 failed",
     f"GET /v1beta/models/g:generate?alt=sse&key={MASK} failed"),
    ("x-api-key: whatever-it-is-42", f"x-api-key: {MASK}"),
    ('"api_key": "zzzzzzzzzzzz"', f'"api_key": "{MASK}"'),
    ("redis://default:hunter2hunter2@cache:6379/0", f"redis://default:{MASK}@cache:6379/0"),
])
def test_key_shapes_are_masked_without_being_configured(text, expected):
    assert Scrubber().scrub(text) == expected


@pytest.mark.parametrize("text", [
    "Bearer authentication failed",  # no digit: a word, not a token
    "the model's task-list was too long",
    "rate limit reached for requests per minute: 20",
    "invalid value for max_tokens: 0 < 1",
])
def test_ordinary_error_text_is_left_alone(text):
    assert Scrubber().scrub(text) == text


def test_the_longest_secret_wins_so_a_key_containing_another_is_masked_whole():
    scrubber = Scrubber(["abcdef123", "abcdef123456789"])
    assert scrubber.scrub("k=abcdef123456789!") == f"k={MASK}!"


def test_short_values_are_not_secrets():
    """Masking "abc" would blank every word containing it; such keys are refused by the config."""
    assert Scrubber(["abc", ""]).scrub("abc abcdef") == "abc abcdef"


def test_clip_scrubs_before_cutting():
    """Cutting first would leave half a key that neither its value nor its shape matches."""
    scrubber = Scrubber(["zzzz-secret-value-9999"])
    text = "x" * 20 + "zzzz-secret-value-9999"
    assert "zzzz" not in scrubber.clip(text, 30)


def test_scrub_json_reaches_every_string():
    scrubber = Scrubber([SECRET])
    value = {"a": [SECRET, {"b": f"x {SECRET}"}], SECRET: 1, "n": 2}
    assert scrubber.scrub_json(value) == {"a": [MASK, {"b": f"x {MASK}"}], MASK: 1, "n": 2}


def test_looks_like_key():
    assert looks_like_key("sk-0123456789abcdef")
    assert looks_like_key(" AIzaSyA-1234567890abcdefghijklmnop ")
    assert not looks_like_key("https://api.example.com/v1")


_KEY_CHARS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."),
                     min_size=6, max_size=40)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)


@given(secrets=st.lists(_KEY_CHARS, min_size=1, max_size=3), pieces=st.lists(_TEXT, min_size=1, max_size=4))
def test_no_configured_secret_survives_in_any_surrounding(secrets, pieces):
    scrubber = Scrubber(secrets)
    text = "".join(p + secrets[i % len(secrets)] for i, p in enumerate(pieces))
    out = scrubber.scrub(text)
    for secret in secrets:
        assert secret not in out
    assert scrubber.scrub(out) == out  # idempotent: scrubbing twice (logs of logs) changes nothing


# The shortcut past the regexes (text that holds none of the shapes' needles) must change nothing: the
# scrubber with it and the regex passes alone agree on every text, including ones built from the shapes'
# own pieces in any case, ASCII or not.
_PIECES = ["sk-", "SK-", "AIza", "gh", "ghp_", "GH", "_", "-", ":", "=", " ", '"', "?", "&", "://", "@", "/",
           "authorization", "AUTHORIZATION", "Bearer ", "bearer", "api", "API", "_key", "-key", "x-api-key",
           "access", "_token", "client", "secret", "SECRET", "key", "token", "password", "user", "https",
           "abcdefgh", "0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "\u212a", "\u017f", "\u0130", "é"]


@given(st.lists(st.sampled_from(_PIECES), max_size=24).map("".join))
def test_the_needle_shortcut_agrees_with_the_regex_passes(text):
    from occ.core.scrub import _scrub_shapes

    assert Scrubber().scrub(text) == _scrub_shapes(text)


@pytest.mark.parametrize("text", [
    "sk-proj-abcdEFGH1234", "AIzaSyA-1234567890abcdefghijklmnop", "ghp_abcdefghijklmnopqrstuvwxyz",
    "Authorization: tok_9f8e7d6c5b", "BEARER abc123def456", "X-Api-Key: whatever-it-is-42",
    "CLIENT_SECRET=hunter2hunter2", "ACCESS-TOKEN: abcdef", "/x?KEY=AbCdEf123456", "HTTPS://user:pass@host",
])
def test_every_shape_is_caught_in_any_case_with_the_shortcut(text):
    assert MASK in Scrubber().scrub(text)
