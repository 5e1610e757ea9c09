"""The one scrubber: every byte occ shows to a person or a client passes through it first.

Upstreams echo credentials in their error messages ("Incorrect API key provided: sk-..."), a key
pasted into the wrong config field ends up in a validation message, and a shared-state URL can carry
a password. occ cannot stop an upstream from writing a key, but it can stop repeating it: error
bodies, mid-stream ``error`` events, ``/status``, ``/metrics``, log lines and the CLI's output are all
scrubbed here, at the boundary where they leave occ, never earlier (so the upstream-error mapper,
the classifier and the fallback loop keep working on the real text).

The scrubber knows two things:

* every configured secret, by value (:meth:`Scrubber.remember`): provider keys, client keys, header
  values, passwords in URLs. Register new kinds by calling :func:`remember_secrets` with them;
* the usual key *shapes*, for keys occ was never told about (a client's own key, another provider's):
  ``sk-...``, ``AIza...``, ``Bearer ...`` tokens, ``key=``/``api_key=`` query parameters and
  ``x-api-key:``/``authorization:``-style header echoes, ``user:password@`` in URLs.

Upstream error text stays useful: only the secret is replaced by :data:`MASK`, the words around it
stay. Sans-IO and dependency-free; one process-wide instance (:data:`SCRUBBER`), because a secret
registered by any app must be masked by every logger and every error path in the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "SCRUBBER",
    "Scrubber",
    "clip",
    "looks_like_key",
    "remember_secrets",
    "scrub",
    "scrub_json",
]

#: What a secret becomes.
MASK = "[redacted]"

#: Shorter configured values are not masked by value: "abc" would blank every word containing it.
#: Keys this short are refused anyway (``client_api_keys`` needs 16 characters, see the config docs).
MIN_SECRET_LENGTH = 6

_TOKEN = r"[A-Za-z0-9._~+/=-]"

#: Shapes whose every match is a secret (the whole match is masked).
_WHOLE = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),  # OpenAI, Anthropic (sk-ant-...), DeepSeek, OpenCode...
    re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"),  # Google API keys
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens, often pasted next to the others
]

#: Shapes where a label announces the secret: the label stays, the value after it is masked.
_LABELLED = [
    # Authorization: Bearer xxx / Basic xxx / a bare token
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?)"
               r"(?!\[redacted\])(?!(?:bearer|basic)\s)" + _TOKEN + r"+"),
    # Bearer tokens anywhere (a digit in the token: "Bearer authentication failed" stays readable)
    re.compile(r"(?i)(\bbearer\s+)(?=" + _TOKEN + r"*\d)" + _TOKEN + r"{8,}"),
    # x-api-key: ..., x-goog-api-key=..., "api_key": "...", apikey=...
    re.compile(r"(?i)((?:x-goog-api-key|x-api-key|api[_-]?key|access[_-]?token|client[_-]?secret)[\"']?"
               r"\s*[:=]\s*[\"']?)[^\s,;&\"'<>]+"),
    # ?key=... and &key=... in URLs (Gemini's query-string key)
    re.compile(r"(?i)([?&](?:key|token|password|secret)=)[^&\s\"'<>#]+"),
    # scheme://user:password@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+(?=@)"),
]

#: Text that none of the shapes above can match lacks every one of these: each shape needs one of them
#: literally (``sk-``, ``AIza``, ``gh``; a ``?`` or ``&`` before ``key=``; ``://``), or, case-insensitively,
#: its label (``authorization``, ``bearer``; ``api``, ``access`` or ``secret`` in the key labels). A shape
#: added above needs its needle here too (tests/core/test_scrub.py checks both paths agree).
_NEEDLES = ("sk-", "AIza", "gh", "?", "&", "://")
_NEEDLES_ANY_CASE = ("authorization", "bearer", "api", "access", "secret")


def _may_hold_shape(text: str) -> bool:
    """False only when no shape can match ``text``: then its 8 regex passes (~25 us on an access-log
    line) are skipped. Only for ASCII text, where ``lower()`` is exactly the regexes' case folding
    (Unicode folding matches e.g. the Kelvin sign as ``k``)."""
    if not text.isascii():
        return True
    for needle in _NEEDLES:
        if needle in text:
            return True
    lower = text.lower()
    for needle in _NEEDLES_ANY_CASE:
        if needle in lower:
            return True
    return False


_KEY_SHAPE = re.compile(r"^(?:sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,})$")


class Scrubber:
    """Masks known secrets by value and unknown ones by shape. Add secrets at any time; none is ever
    forgotten (a key removed by a reload may still sit in an upstream's cached error text)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self.remember(secrets)

    def remember(self, secrets: Iterable[Any]) -> None:
        """Mask these values from now on (non-strings and values shorter than
        :data:`MIN_SECRET_LENGTH` are ignored)."""
        added = {s for s in secrets if isinstance(s, str) and len(s.strip()) >= MIN_SECRET_LENGTH}
        added = {s.strip() for s in added} | added
        if not added <= self._secrets:
            self._secrets |= added
            # longest first: a key that contains another key is masked whole
            self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret and every key-shaped string replaced by :data:`MASK`."""
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        if not _may_hold_shape(text):
            return text
        return _scrub_shapes(text)

    def scrub_json(self, value: Any) -> Any:
        """A JSON-like value with every string (keys of objects included) scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub_json(v) for v in value]
        return value

    def clip(self, text: str, limit: int) -> str:
        """Scrub, *then* cut to ``limit`` characters: cutting first could leave half a key, which
        neither its value nor its shape would match any more."""
        text = self.scrub(text)
        return text if len(text) <= limit else text[:limit]


def _keep_label(match: re.Match[str]) -> str:
    return match.group(1) + MASK


def _scrub_shapes(text: str) -> str:
    """``text`` with every key-shaped string masked (the regex passes)."""
    for pattern in _WHOLE:
        text = pattern.sub(MASK, text)
    for pattern in _LABELLED:
        text = pattern.sub(_keep_label, text)
    return text


def looks_like_key(value: str) -> bool:
    """True for a string that is, as a whole, shaped like a provider key (``sk-...``, ``AIza...``)."""
    return bool(_KEY_SHAPE.match(value.strip()))


#: The process's scrubber: every logger, error body, ``error`` event and CLI line uses this one.
SCRUBBER = Scrubber()


def remember_secrets(secrets: Iterable[Any]) -> None:
    """Register configured secrets (keys, header values, passwords) with the process's scrubber."""
    SCRUBBER.remember(secrets)


def scrub(text: str) -> str:
    """``text`` minus every secret the process knows and every key-shaped string."""
    return SCRUBBER.scrub(text)


def scrub_json(value: Any) -> Any:
    return SCRUBBER.scrub_json(value)


def clip(text: str, limit: int) -> str:
    """Scrubbed, then at most ``limit`` characters."""
    return SCRUBBER.clip(text, limit)
