"""Is this text, so far, the beginning of a JSON object? Checked one character at a time.

Tool arguments stream to the client as ``input_json_delta`` fragments, and the Anthropic SDKs parse
what they have accumulated after every fragment (partial JSON): a fragment that makes the prefix
invalid raises inside the client, mid-stream. So a fragment goes out only once :class:`JsonPrefix`
has accepted it, and the call ends cleanly only when the object is :attr:`~JsonPrefix.complete`.

A state machine over RFC 8259 (strings with their escapes, numbers by their grammar, the three
literals), linear in the input, no backtracking. Sans-IO. The runs that make up nearly all of a large
tool input (the inside of a string, whitespace, digits) are taken by one regular-expression match each
instead of one Python step per character: a 100 KB ``Write`` costs well under a millisecond
(``benchmarks/components.py``), not 11 ms.
"""

from __future__ import annotations

import re

__all__ = ["JsonPrefix"]

_WS = " \t\n\r"
_ESCAPES = '"\\/bfnrtu'
_HEX = "0123456789abcdefABCDEF"
_DIGITS = "0123456789"
#: what a string may hold without a closer look: anything but the quote, the backslash and controls, and
#: whole escapes (an escape cut by the end of a fragment is left to the character-by-character path)
_STRING_RUN = re.compile(r'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*')
_WS_RUN = re.compile(r"[ \t\n\r]+")
_DIGIT_RUN = re.compile(r"[0-9]+")

# where the parser is between tokens
_START, _KEY_OR_CLOSE, _KEY, _COLON, _VALUE, _VALUE_OR_CLOSE, _AFTER, _END = range(8)
# number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
_N_SIGN, _N_ZERO, _N_INT, _N_DOT, _N_FRAC, _N_E, _N_ESIGN, _N_EXP = range(8)
_N_ACCEPTING = frozenset({_N_ZERO, _N_INT, _N_FRAC, _N_EXP})
_N_RUNS = frozenset({_N_INT, _N_FRAC, _N_EXP})  # where more digits change nothing


class JsonPrefix:
    """Feed text; :meth:`feed` says whether it still begins a JSON object.

    Once a character is refused the prefix stays :attr:`broken` (h11's ERROR state: every later
    call fails the same way), and :attr:`offset` is where it broke.
    """

    def __init__(self) -> None:
        self._stack: list[str] = []
        self._state = _START
        self._in_string = False
        self._string_is_key = False
        self._escape = 0  # 1 after a backslash; 2-5 while reading \\u's hex digits
        self._number: int | None = None
        self._literal = ""  # the rest of true/false/null still expected
        self.broken = False
        self.offset = 0

    @property
    def started(self) -> bool:
        """A character other than whitespace has been accepted (the object's ``{``)."""
        return self._state != _START

    @property
    def complete(self) -> bool:
        """The object is closed; only whitespace may follow."""
        return self._state == _END and not self.broken

    def feed(self, text: str) -> bool:
        """Accept ``text``; False (and :attr:`broken`) at the first character that cannot follow."""
        if self.broken:
            return False
        i, end = 0, len(text)
        while i < end:
            run = None
            if self._in_string:
                if not self._escape:
                    run = _STRING_RUN.match(text, i)
            elif self._number is not None:
                if self._number in _N_RUNS:
                    run = _DIGIT_RUN.match(text, i)
            elif not self._literal:
                run = _WS_RUN.match(text, i)
            if run is not None:  # a run changes no state: skip it whole
                self.offset += run.end() - i
                i = run.end()
                if i == end:
                    break
            if not self._char(text[i]):
                self.broken = True
                return False
            self.offset += 1
            i += 1
        return True

    # -- one character -------------------------------------------------------------------------

    def _char(self, c: str) -> bool:
        if self._in_string:
            return self._string_char(c)
        if self._number is not None:
            if self._number_char(c):
                return True
            if self._number not in _N_ACCEPTING:
                return False
            self._number = None  # the number ended; c is read as what follows it
        if self._literal:
            if c != self._literal[0]:
                return False
            self._literal = self._literal[1:]
            return True
        if c in _WS:
            return True
        state = self._state
        if state == _START:
            if c != "{":
                return False
            self._open("{")
            return True
        if state == _END:
            return False
        if state in (_KEY_OR_CLOSE, _KEY):
            if c == '"':
                self._in_string, self._string_is_key = True, True
                return True
            if c == "}" and state == _KEY_OR_CLOSE:
                return self._close("}")
            return False
        if state == _COLON:
            if c != ":":
                return False
            self._state = _VALUE
            return True
        if state in (_VALUE, _VALUE_OR_CLOSE):
            if c == "]" and state == _VALUE_OR_CLOSE:
                return self._close("]")
            return self._value_start(c)
        # _AFTER: a value ended
        if c == ",":
            self._state = _KEY if self._stack[-1] == "{" else _VALUE
            return True
        if c in "}]":
            return self._close(c)
        return False

    def _value_start(self, c: str) -> bool:
        self._state = _AFTER  # what follows the value, once its token ends
        if c == '"':
            self._in_string, self._string_is_key = True, False
            return True
        if c in "{[":
            self._open(c)
            return True
        if c == "-":
            self._number = _N_SIGN
            return True
        if c in _DIGITS:
            self._number = _N_ZERO if c == "0" else _N_INT
            return True
        for literal in ("true", "false", "null"):
            if c == literal[0]:
                self._literal = literal[1:]
                return True
        return False

    def _open(self, bracket: str) -> None:
        self._stack.append(bracket)
        self._state = _KEY_OR_CLOSE if bracket == "{" else _VALUE_OR_CLOSE

    def _close(self, bracket: str) -> bool:
        if not self._stack or self._stack[-1] != ("{" if bracket == "}" else "["):
            return False
        self._stack.pop()
        self._state = _AFTER if self._stack else _END
        return True

    def _string_char(self, c: str) -> bool:
        if self._escape == 1:
            if c not in _ESCAPES:
                return False
            self._escape = 2 if c == "u" else 0
            return True
        if self._escape >= 2:
            if c not in _HEX:
                return False
            self._escape = 0 if self._escape == 5 else self._escape + 1
            return True
        if c == "\\":
            self._escape = 1
            return True
        if c == '"':
            self._in_string = False
            self._state = _COLON if self._string_is_key else _AFTER
            return True
        return c >= " "  # control characters must be escaped

    def _number_char(self, c: str) -> bool:
        n = self._number
        if c in _DIGITS:
            if n == _N_SIGN:
                self._number = _N_ZERO if c == "0" else _N_INT
            elif n in (_N_INT, _N_FRAC, _N_EXP):
                pass
            elif n == _N_DOT:
                self._number = _N_FRAC
            elif n in (_N_E, _N_ESIGN):
                self._number = _N_EXP
            else:  # a digit after a leading zero
                return False
            return True
        if c == "." and n in (_N_ZERO, _N_INT):
            self._number = _N_DOT
            return True
        if c in "eE" and n in (_N_ZERO, _N_INT, _N_FRAC):
            self._number = _N_E
            return True
        if c in "+-" and n == _N_E:
            self._number = _N_ESIGN
            return True
        return False
