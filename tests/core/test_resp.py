"""RESP framing: commands encoded as the protocol says, replies parsed from any split of the bytes."""

from __future__ import annotations

import pytest

from occ.core.resp import NEED_MORE, ReplyError, RespParser, encode, encode_many


def test_a_command_is_an_array_of_bulk_strings():
    assert encode("SET", "k", b"v\r\n", 12, 1.5) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n$3\r\n1.5\r\n")
    assert encode_many([["PING"], ["GET", "é"]]) == b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"
    with pytest.raises(TypeError):
        encode("SET", "k", True)


def test_replies_come_out_whole_whatever_the_split():
    wire = b"+OK\r\n-WRONGPASS invalid\r\n*2\r\n$1\r\na\r\n:5\r\n$-1\r\n:0\r\n"
    for cut in range(len(wire)):
        parser, replies = RespParser(), []
        for part in (wire[:cut], wire[cut:]):
            parser.feed(part)
            while (reply := parser.next()) is not NEED_MORE:
                replies.append(reply)
        assert replies[0] == b"OK" and replies[2:] == [[b"a", 5], None, 0]
        assert isinstance(replies[1], ReplyError) and "WRONGPASS" in str(replies[1])
