"""Dynamic host ports for replicas: the local form of ECS's `hostPort: 0`.

Why not hand the child a listening socket? Built-in services bind their
own socket from `--port`/`$PORT` (so a taken port is their one-line error); any `command`
service likewise only learns `$PORT`. So the supervisor has to name a port the child will bind
later, and the race is unavoidable in principle: between our choice and the child's bind,
another process may take the port. We make it rare and harmless:

1. Pick with bind-to-0 (`PortAllocator.allocate`): the kernel hands out a port from the
   ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`, the same range ECS takes dynamic
   host ports from, docs/ecs.md §F.2) that nothing listens on at that moment.
2. Remember every port handed out to a live replica and never hand it out twice: the kernel
   does not know about a port we only promised, so two replicas started back to back could
   otherwise both be told the same port.
3. Detect the loser of a race: a child whose bind failed exits early printing EADDRINUSE
   (`is_port_conflict` reads its last lines). The supervisor then starts it again on another
   port without counting a crash. And a replica is registered only when the socket listening
   on its port belongs to its own process group (`listening_inodes` + the runner's
   `owns_port`), so a port taken by somebody else is never mistaken for our replica.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Sequence

# What a failed bind prints: Python's OSError, Rust's io::Error, Node's EADDRINUSE.
_CONFLICT_MARKERS = ("address already in use", "eaddrinuse", "errno 98", "os error 98")
_TCP_LISTEN = "0A"  # the st column of /proc/net/tcp for a listening socket
# sock_diag netlink (linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h): a dump request for
# TCP sockets in state LISTEN; each answer is an nlmsghdr + inet_diag_msg (sport at byte 4,
# big-endian; inode at byte 68).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_STATE_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")


class PortAllocator:
    """Hands out free ports on a host, never the same one to two live replicas."""

    def __init__(self, host: str = "127.0.0.1", attempts: int = 20) -> None:
        self._host = host
        self._attempts = attempts
        self._handed_out: set[int] = set()

    def __repr__(self) -> str:
        return f"<PortAllocator {self._host} handed_out={sorted(self._handed_out)}>"

    def allocate(self) -> int:
        """A port that was free a moment ago and is not promised to another replica."""
        for _ in range(self._attempts):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((self._host, 0))
                port = int(sock.getsockname()[1])
            if port not in self._handed_out:
                self._handed_out.add(port)
                return port
        raise OSError(f"no free port on {self._host} after {self._attempts} attempts")

    def release(self, port: int) -> None:
        """The replica on `port` is gone: the port may be handed out again."""
        self._handed_out.discard(port)

    @property
    def handed_out(self) -> frozenset[int]:
        """The ports currently promised to live replicas."""
        return frozenset(self._handed_out)


def is_port_conflict(lines: Sequence[str]) -> bool:
    """Whether a replica's last lines say its bind failed because the port was taken."""
    return any(marker in line.lower() for line in lines for marker in _CONFLICT_MARKERS)


def parse_listening_inodes(table: str, port: int) -> set[int]:
    """Socket inodes listening on `port` in a /proc/net/tcp(6) table (pure, for tests)."""
    inodes = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _TCP_LISTEN:
            continue
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(int(fields[9]))
    return inodes


def listening_inodes(port: int) -> set[int] | None:
    """Inodes of the sockets listening on `port` (None where neither source is available).

    Asks the kernel through sock_diag netlink for listening sockets only (fast however many
    connections exist); reading /proc/net/tcp is the fallback: it lists every connection and
    takes ~0.1 s with a few thousand of them (a benchmark's TIME_WAIT sockets).
    """
    found = _diag_listening_inodes(port)
    return found if found is not None else _proc_listening_inodes(port)


def parse_diag_messages(data: bytes, port: int) -> tuple[set[int], bool]:
    """Inodes listening on `port` in a sock_diag answer; and whether the dump is complete."""
    inodes: set[int] = set()
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if kind == _NLMSG_DONE:
            return inodes, True
        if kind == _NLMSG_ERROR or length < _NLMSG.size:
            raise OSError("sock_diag answered an error")
        body = offset + _NLMSG.size
        sport = struct.unpack_from("!H", data, body + 4)[0]
        inode = struct.unpack_from("=I", data, body + 68)[0]
        if sport == port:
            inodes.add(inode)
        offset += (length + 3) & ~3
    return inodes, False


def _diag_listening_inodes(port: int) -> set[int] | None:
    found: set[int] = set()
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
            for family in (socket.AF_INET, socket.AF_INET6):
                request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_STATE_LISTEN)
                sock.send(_NLMSG.pack(_NLMSG.size + len(request), _SOCK_DIAG_BY_FAMILY,
                                      _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + request)  # fmt: skip
                done = False
                while not done:
                    inodes, done = parse_diag_messages(sock.recv(65536), port)
                    found |= inodes
    except (OSError, AttributeError, struct.error):
        return None
    return found


def _proc_listening_inodes(port: int) -> set[int] | None:
    found: set[int] = set()
    try:
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            if os.path.exists(name):
                with open(name, encoding="ascii") as fh:
                    found |= parse_listening_inodes(fh.read(), port)
    except OSError:
        return None
    return found


def socket_inodes_of(pids: Iterable[int]) -> set[int]:
    """The socket inodes the processes `pids` hold open (those we may read)."""
    inodes = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"{fd_dir}/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def process_group_members(pgid: int) -> list[int]:
    """The pids whose process group is `pgid` (from /proc/*/stat)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces and ")", so split after it.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def group_owns_port(pgid: int, port: int) -> bool:
    """Whether a process of group `pgid` holds the socket listening on `port`.

    Where /proc is not available, assume it does (the probe that found the port listening
    is then the only check).
    """
    listening = listening_inodes(port)
    if listening is None:
        return True
    # The group leader usually holds the socket itself (`microforum serve`, a plain
    # server): check it first, and scan the whole process table only when it does not.
    if listening & socket_inodes_of([pgid]):
        return True
    return bool(listening & socket_inodes_of(process_group_members(pgid)))
