"""Gemini thought signatures through Claude Code's history, for every wire that carries them. Sans-IO.

Gemini 3 returns an opaque thought signature with each step's function call (natively on the part,
``thoughtSignature``; on OpenAI-compatible endpoints on the tool call,
``tool_calls[].extra_content.google.thought_signature``) and rejects the next turn with a 400 when it does
not come back on that call (docs/thought-signatures.md has the facts and their sources). occ keeps no
server-side state: the signature reaches the client as the signature of a thinking block (an empty one
when no thoughts are shown, as Anthropic's own omitted-display thinking), ``occ1.g.<provider/model>|<sig>``,
which Claude Code keeps in its history and sends back unchanged. The block stands right before the call it
belongs to; the signature goes back only to the model (the route label) that made it, because signatures
are bound to model and route and another model answers "Corrupted thought signature".

Tool ids stay short: no signature rides in a ``tool_use`` id any more. Ids of the form occ minted
before (``toolu_<24 hex>g<base64url(route tag|signature)>``) are still read from existing histories.

A call with no signature of its own for the model (a history from another model, a client without
thinking, which receives no thinking block) gets Google's documented placeholder,
``skip_thought_signature_validator``, on the first call of its step, so switching models mid-session works.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from functools import lru_cache
from typing import Any

from occ.translate.anthropic_events import SIGNATURE_PREFIX

__all__ = [
    "SKIP_SIGNATURE",
    "THOUGHT_PREFIX",
    "call_signatures",
    "needs_signatures",
    "owned_signature",
    "signature_in_legacy_id",
    "thought_signature",
]

#: Google's documented placeholder for a function call whose signature is missing (the thought-signatures
#: FAQ gives it and ``context_engineering_is_the_way_to_go``; Vertex AI documents only this one).
SKIP_SIGNATURE = "skip_thought_signature_validator"
#: A thinking block whose signature starts with this carries a Gemini thought signature.
THOUGHT_PREFIX = SIGNATURE_PREFIX + "g."

_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")


def thought_signature(route: str, signature: str) -> str:
    """The Anthropic thinking signature that carries Gemini's ``signature`` for the model ``route``."""
    return f"{THOUGHT_PREFIX}{route}|{signature}"


def owned_signature(block: Any, route: str) -> str | None:
    """The Gemini signature a thinking block carries for ``route``; None for any other block, for a
    signature of another model, and for the old ``occ1.g.<sig>`` form that names no model."""
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return None
    signature = block.get("signature")
    if not isinstance(signature, str) or not signature.startswith(THOUGHT_PREFIX):
        return None
    owner, sep, value = signature[len(THOUGHT_PREFIX):].rpartition("|")
    return value if sep and owner == route and value else None


def _route_tag(route: str) -> str:
    return hashlib.sha256(route.encode()).hexdigest()[:8]


_LEGACY_ID_HEAD = len("toolu_") + 24  # then "g" and the payload


def signature_in_legacy_id(tool_id: Any, route: str) -> str | None:
    """The signature an id of occ's earlier form carried for ``route`` (``toolu_<24 hex>g<base64url(route
    tag|signature)>``, minted for clients without thinking); None for any other id."""
    if not isinstance(tool_id, str) or len(tool_id) <= _LEGACY_ID_HEAD + 1 or tool_id[_LEGACY_ID_HEAD] != "g" \
            or not tool_id.startswith("toolu_"):
        return None
    encoded = tool_id[_LEGACY_ID_HEAD + 1:]
    try:
        decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    tag, sep, signature = decoded.partition("|")
    return signature if sep and tag == _route_tag(route) and signature else None


def call_signatures(blocks: list[dict[str, Any]], route: str) -> dict[int, str]:
    """The signature of each ``tool_use`` block of an assistant turn (by its position in ``blocks``) that
    has one for ``route``: a signed thinking block belongs to the first call after it (to the last call
    before it when none follows: a signature that arrived after its call had started); an id of the old
    form carries its own. One pass, and nothing decoded for blocks that carry no Gemini signature."""
    out: dict[int, str] = {}
    pending: str | None = None  # a signature waiting for the next call
    last_call: int | None = None
    for position, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "tool_use":
            last_call = position
            if pending is not None:
                out[position] = pending
                pending = None
            else:
                tool_id = block.get("id")
                if isinstance(tool_id, str) and len(tool_id) > _LEGACY_ID_HEAD + 1:
                    legacy = signature_in_legacy_id(tool_id, route)
                    if legacy is not None:
                        out[position] = legacy
        elif kind == "thinking" and pending is None:
            signature = block.get("signature")
            if isinstance(signature, str) and signature.startswith(THOUGHT_PREFIX):
                pending = owned_signature(block, route)
    if pending is not None and last_call is not None and last_call not in out:
        out[last_call] = pending
    return out


@lru_cache(maxsize=256)
def needs_signatures(model_id: str) -> bool:
    """Whether the model validates thought signatures on replayed calls (Gemini 3 and later; 2.5 returns
    them but does not require them back)."""
    match = _GEMINI_MAJOR.search(model_id.lower())
    return match is not None and int(match.group(1)) >= 3
