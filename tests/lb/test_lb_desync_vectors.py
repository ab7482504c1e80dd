"""Every public desync test vector of http-desync-guardian (the library behind ALB's desync
mitigation; tests/lb/desync_vectors/, Apache-2.0, see LICENSE and NOTICE there), sent raw
through the load balancer to a lenient target in each mode, answered as ALB answers it:

    monitor    forwards all
    defensive  forwards Compliant and Acceptable (connection kept), forwards Ambiguous then
               closes, refuses Severe (400, closed, nothing forwarded)
    strictest  forwards Compliant only

and logged with the vector's classification and reason.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import yaml
from lb_harness import Harness, LenientTarget
from lb_helpers import stack

pytestmark = pytest.mark.timeout(120)

VECTORS = Path(__file__).with_name("desync_vectors")
# Its URI holds CRLF CRLF: on the wire that is two requests, so the load balancer judges the
# first one it reads (a tab in its target: AmbiguousUri); the second is never forwarded.
TWO_ON_THE_WIRE = {"Request Smuggling in URI": ("Ambiguous", "AmbiguousUri")}


def _vectors() -> list[dict]:
    found = []
    for path in sorted(VECTORS.glob("*.yaml")):
        for vector in yaml.safe_load(path.read_text("utf-8")):
            vector["file"] = path.name
            found.append(vector)
    return found


ALL = _vectors()


def _bytes(value: object) -> bytes:
    return str(value).encode("utf-8")  # as the library's own tests build raw requests


def request(vector: dict) -> bytes:
    """The vector as sent: its request line and fields (with a Host first when it has none:
    HTTP/1.1 requires one, and it changes no classification), the blank line, and a body as
    long as its exact framing fields say (so that a framed request is complete)."""
    line = _bytes(vector["method"]) + b" " + _bytes(vector["uri"])
    if vector["version"]:
        line += b" " + _bytes(vector["version"])
    fields = [(_bytes(h["name"]), _bytes(h["value"])) for h in vector.get("headers") or []]
    if not any(n.lower() == b"host" for n, _ in fields):
        fields.insert(0, (b"Host", b"vectors.test"))
    head = line + b"\r\n" + b"".join(b"%s: %s\r\n" % f for f in fields) + b"\r\n"
    codings = [c.partition(b";")[0].strip().lower() for n, v in fields
               if n.lower() == b"transfer-encoding" for c in v.split(b",")]  # fmt: skip
    lengths = {v.strip() for n, v in fields if n.lower() == b"content-length"}
    if codings and codings[-1] == b"chunked":
        return head + b"0\r\n\r\n"
    if len(lengths) == 1 and next(iter(lengths)).isdigit() and int(next(iter(lengths))) < 1 << 23:
        # (a CRLF inside a value ends the head early on the wire: the rest is body already)
        already = len(head) - head.find(b"\r\n\r\n") - 4
        return head + b"x" * max(0, int(next(iter(lengths))) - already)
    return head


def expected(vector: dict) -> tuple[str, str]:
    if vector["name"] in TWO_ON_THE_WIRE:
        return TWO_ON_THE_WIRE[vector["name"]]
    tier, reason = vector["expected"]["tier"], vector["expected"]["reason"]
    return tier, "-" if reason == "Compliant" else reason


@pytest.fixture(scope="module", params=["monitor", "defensive", "strictest"])
def lb(request, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "access.log"
    harness = Harness(stack(f"load_balancer: {{desync_mitigation_mode: {request.param}}}"), access_log=log)
    target = harness.backend("lenient-1", "monolith", kind=LenientTarget)
    yield request.param, harness, target
    harness.close()


def exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send `data` then a plain GET; (the first answer, whether the connection stayed open
    for the GET)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = _read_answer(sock, head_only=data.startswith(b"HEAD "))
        try:
            sock.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            kept = _read_answer(sock).startswith(b"HTTP/1.1 200")
        except OSError:
            kept = False
        return answer, kept


def _read_answer(sock: socket.socket, head_only: bool = False) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    while length and not head_only and len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return data


def outcome(mode: str, tier: str) -> str:
    """What ALB does with a request of `tier` in `mode`."""
    if mode == "monitor" or tier == "Compliant" or (mode == "defensive" and tier == "Acceptable"):
        return "forward"
    if mode == "defensive" and tier == "Ambiguous":
        return "forward-then-close"
    return "refuse"


@pytest.mark.parametrize("vector", ALL, ids=[f"{v['file']}:{v['name']}" for v in ALL])
def test_vector(lb, vector):
    mode, harness, target = lb
    tier, reason = expected(vector)
    before, logged = len(target.lines), len(harness.access_log())
    answer, kept = exchange(harness.port, request(vector))
    forwarded = [line for line in target.lines[before:] if line != b"GET /next HTTP/1.1"]
    wanted = outcome(mode, tier)
    if wanted == "refuse":
        assert answer.startswith(b"HTTP/1.1 400 ") and not kept and not forwarded, answer[:200]
    else:
        assert answer.startswith(b"HTTP/1.1 200 ") and len(forwarded) == 1, (answer[:200], forwarded)
        if wanted == "forward-then-close":
            assert not kept
        elif mode == "defensive" and _keeps_alive(vector):
            assert kept
    # (searched, not split into lines: a control byte in the request may be in the file as is)
    logged_now = "\n".join(harness.access_log()[logged:])
    found = re.search(r'"([A-Za-z-]+)" "([A-Za-z-]+)" TID_[0-9a-f]+\n', logged_now + "\n")
    assert found is not None and found.groups() == (tier if tier != "Compliant" else "-", reason), logged_now


def _keeps_alive(vector: dict) -> bool:
    """An HTTP/1.1 (or 1.x) request without Connection: close, framed unambiguously."""
    version = str(vector["version"])
    return re.fullmatch(r"HTTP/1\.[1-9]", version) is not None and not any(
        str(h["name"]).lower() == "connection" for h in vector.get("headers") or []
    )


def test_every_vector_is_here():
    assert len(ALL) == 158
    assert (VECTORS / "LICENSE").is_file() and (VECTORS / "NOTICE").is_file()
