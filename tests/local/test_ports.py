"""Dynamic ports: never the same port twice, bind conflicts recognised, listeners' owners found."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from microforum.local.ports import (
    PortAllocator,
    group_owns_port,
    is_port_conflict,
    listening_inodes,
    parse_diag_messages,
    parse_listening_inodes,
)


def test_allocator_never_hands_out_a_promised_port_twice() -> None:
    ports = PortAllocator()
    promised = {ports.allocate() for _ in range(50)}
    assert len(promised) == 50
    assert ports.handed_out == promised
    some = next(iter(promised))
    ports.release(some)
    assert some not in ports.handed_out
    assert repr(ports).startswith("<PortAllocator 127.0.0.1 handed_out=[")


def test_allocated_port_is_bindable_right_after() -> None:
    port = PortAllocator().allocate()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("lines", "conflict"),
    [
        (["OSError: [Errno 98] Address already in use"], True),
        (["Error: listen EADDRINUSE: address already in use 127.0.0.1:3000"], True),
        (["Address in use (os error 98)"], True),
        (["ImportError: No module named foo"], False),
        ([], False),
    ],
    ids=["python", "node", "rust", "other-crash", "silent"],
)
def test_is_port_conflict(lines: list[str], conflict: bool) -> None:
    assert is_port_conflict(lines) is conflict


TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1
"""


def test_parse_listening_inodes_keeps_only_listeners_on_the_port() -> None:
    assert parse_listening_inodes(TCP_TABLE, 8080) == {4242}  # not the established one
    assert parse_listening_inodes(TCP_TABLE, 22) == {4444}
    assert parse_listening_inodes(TCP_TABLE, 9999) == set()


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_group_owns_port_tells_our_listener_from_another_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert group_owns_port(os.getpgid(0), port)
        assert not group_owns_port(1, port)  # init's group does not hold our socket


def _diag_message(sport: int, inode: int) -> bytes:
    body = struct.pack("=BBBB", 2, 10, 0, 0) + struct.pack("!HH", sport, 0) + bytes(44)
    body += struct.pack("=IIIII", 0, 0, 0, 0, inode)
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


def test_parse_diag_messages_reads_ports_and_inodes_until_done() -> None:
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + bytes(4)
    assert parse_diag_messages(_diag_message(8080, 11) + _diag_message(22, 12), 8080) == ({11}, False)
    assert parse_diag_messages(_diag_message(8080, 13) + done, 8080) == ({13}, True)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_netlink_and_proc_agree_on_a_real_listener() -> None:
    from microforum.local.ports import _diag_listening_inodes, _proc_listening_inodes

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = listening_inodes(port)
        assert found and found == _diag_listening_inodes(port) == _proc_listening_inodes(port)
