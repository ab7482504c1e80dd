"""The exchange's life cycle (lb/lifecycle.py) as tables: every row of the docstring's tables,
every event without a row refused, and the phases an exchange goes through in the usual
transcripts, driven through the socket-free rig (tests/lb/fakes.py)."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest
from fakes import Rig

from microforum.lb.lifecycle import (
    EVENTS,
    REQUEST_PHASES,
    REQUEST_TRANSITIONS,
    RESPONSE_PHASES,
    RESPONSE_TRANSITIONS,
    IllegalTransition,
    _flat,
    request_step,
    response_step,
)  # fmt: skip

# The docstring's tables, by name: (phase, event) -> next phase.
REQUEST = {
    ("HEAD", "body"): "BODY",
    ("HEAD", "complete"): "READ",
    ("BODY", "body"): "BODY",
    ("BODY", "complete"): "READ",
}
RESPONSE = {
    ("WAITING", "start"): "CONNECTING",
    ("WAITING", "answer"): "DONE",
    ("WAITING", "drop"): "DONE",
    ("CONNECTING", "send"): "SENT",
    ("CONNECTING", "answer"): "DONE",
    ("CONNECTING", "drop"): "DONE",
    ("CONNECTING", "gone"): "DONE",
    ("SENT", "send"): "SENT",
    ("SENT", "retry"): "CONNECTING",
    ("SENT", "whole"): "DONE",
    ("SENT", "hold"): "HELD",
    ("SENT", "head"): "RELAYING",
    ("SENT", "answer"): "DONE",
    ("SENT", "gone"): "DONE",
    ("HELD", "release"): "RELAYING",
    ("HELD", "done"): "DONE",
    ("HELD", "cut"): "DONE",
    ("HELD", "send"): "HELD",
    ("RELAYING", "done"): "DONE",
    ("RELAYING", "cut"): "DONE",
    ("RELAYING", "gone"): "DONE",
    ("RELAYING", "send"): "RELAYING",
}


def named(table: dict[tuple[int, int], int], phases: tuple[str, ...]) -> dict[tuple[str, str], str]:
    return {(phases[p], EVENTS[e]): phases[n] for (p, e), n in table.items()}


def docstring_rows() -> set[tuple[str, str, str]]:
    """(phase, event, next) of each row of lifecycle.py's docstring tables (read from the source:
    compiled, the module has no docstring)."""
    source = Path(__file__).resolve().parents[2] / "src" / "microforum" / "lb" / "lifecycle.py"
    doc = ast.get_docstring(ast.parse(source.read_text())) or ""
    rows = re.findall(r"^    ([A-Z]+) +([a-z]+) +([A-Z]+)\b", doc, re.MULTILINE)
    return {(p, e, n) for p, e, n in rows}


def test_the_tables_in_code_are_the_docstrings() -> None:
    assert named(REQUEST_TRANSITIONS, REQUEST_PHASES) == REQUEST
    assert named(RESPONSE_TRANSITIONS, RESPONSE_PHASES) == RESPONSE
    documented = {(p, e, n) for (p, e), n in [*REQUEST.items(), *RESPONSE.items()]}
    assert docstring_rows() == documented


@pytest.mark.parametrize(("phase", "event"), sorted(itertools.product(REQUEST_PHASES, EVENTS)))
def test_request_steps(phase: str, event: str) -> None:
    p, e = REQUEST_PHASES.index(phase), EVENTS.index(event)
    if (phase, event) in REQUEST:
        assert REQUEST_PHASES[request_step(p, e)] == REQUEST[phase, event]
    else:
        with pytest.raises(IllegalTransition, match=f"request {phase}: no transition on {event}"):
            request_step(p, e)


@pytest.mark.parametrize(("phase", "event"), sorted(itertools.product(RESPONSE_PHASES, EVENTS)))
def test_response_steps(phase: str, event: str) -> None:
    p, e = RESPONSE_PHASES.index(phase), EVENTS.index(event)
    if (phase, event) in RESPONSE:
        assert RESPONSE_PHASES[response_step(p, e)] == RESPONSE[phase, event]
    else:
        with pytest.raises(IllegalTransition, match=f"response {phase}: no transition on {event}"):
            response_step(p, e)


@pytest.mark.parametrize(
    ("table", "phases"),
    [(REQUEST_TRANSITIONS, REQUEST_PHASES), (RESPONSE_TRANSITIONS, RESPONSE_PHASES)],
)
def test_the_flat_table_holds_each_row_at_its_index_and_minus_one_elsewhere(
    table: dict[tuple[int, int], int], phases: tuple[str, ...]
) -> None:
    # request_step and response_step index this list; it is built once, at import.
    expected = [table.get((p, e), -1) for p in range(len(phases)) for e in range(len(EVENTS))]
    assert _flat(table, len(phases)) == expected


def test_done_and_read_are_final() -> None:
    assert not [k for k in RESPONSE if k[0] == "DONE"] and not [k for k in REQUEST if k[0] == "READ"]


# Transcripts: the phases an exchange goes through, seen by the target connection's events.

GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The response steps exchanges take, as "PHASE event NEXT" (the rigs here move one)."""
    import microforum.lb.exchange as exchange_module

    taken: list[str] = []
    real = exchange_module.response_step

    def step(phase: int, event: int) -> int:
        after = real(phase, event)
        taken.append(f"{RESPONSE_PHASES[phase]} {EVENTS[event]} {RESPONSE_PHASES[after]}")
        return after

    monkeypatch.setattr(exchange_module, "response_step", step)
    return taken


def phases(rig: Rig) -> str:
    ex = rig.client.queue[0] if rig.client.queue else rig.client.current
    assert ex is not None
    return f"{REQUEST_PHASES[ex.request]}/{RESPONSE_PHASES[ex.response]}"


def test_a_get_answered_in_one_read(tmp_path: Path, steps: list[str]) -> None:
    rig = Rig(tmp_path)
    rig.client_sends(GET)
    ex = rig.client.queue[0]
    assert phases(rig) == "READ/SENT"
    steps.clear()
    rig.target_sends(OK)
    assert (REQUEST_PHASES[ex.request], RESPONSE_PHASES[ex.response]) == ("READ", "DONE")
    assert steps == ["SENT whole DONE"]  # the whole answer in one read, past the parser
    assert rig.peer.data() == OK  # relayed as received


def test_an_answer_in_one_read_the_shortcut_does_not_take_is_held_then_relayed(
    tmp_path: Path, steps: list[str]
) -> None:
    answer = b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 2\r\n\r\nok"  # obs-text: the parser reads it
    rig = Rig(tmp_path)
    rig.client_sends(GET)
    steps.clear()
    rig.target_sends(answer)
    assert steps == ["SENT hold HELD", "HELD done DONE"]
    assert rig.peer.data() == answer


def test_an_obs_fold_answer_in_one_read_is_left_to_the_parser_which_refuses_it(
    tmp_path: Path, steps: list[str]
) -> None:
    rig = Rig(tmp_path)
    rig.client_sends(GET)
    ex = rig.client.queue[0]
    steps.clear()
    rig.target_sends(b"HTTP/1.1 200 OK\r\nX: 1\r\n  folded\r\nContent-Length: 2\r\n\r\nok")
    assert "SENT whole DONE" not in steps and steps[-1].endswith("DONE")
    assert ex.status == 502 and rig.peer.data().startswith(b"HTTP/1.1 502 ")


@pytest.mark.parametrize(
    ("request_", "answer_starts"),
    [
        (b"GET /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", b"HTTP/1.1 200 OK\r\n"),
        (b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n"),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 OK\r\n"),
    ],
)
def test_a_whole_answer_the_client_needs_rewritten_goes_through_the_parser(
    tmp_path: Path, steps: list[str], request_: bytes, answer_starts: bytes
) -> None:
    # An HTTP/1.0 client gets Connection: keep-alive, a HEAD no body, a closing client
    # Connection: close: the whole, plain answer is read by the parser and its head rewritten.
    rig = Rig(tmp_path)
    rig.client_sends(request_)
    steps.clear()
    rig.target_sends(OK)
    assert steps[0] == "SENT head RELAYING" and steps[-1] == "RELAYING done DONE"
    sent = rig.peer.data()
    assert sent.startswith(answer_starts) and sent != OK
    assert sent.endswith(b"\r\n\r\n" if request_.startswith(b"HEAD") else b"\r\n\r\nok")


def test_an_answer_over_two_reads_is_released_then_relayed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.client_sends(GET)
    ex = rig.client.queue[0]
    rig.target_sends(OK[:-1])
    assert RESPONSE_PHASES[ex.response] == "RELAYING"  # the head was held, then released
    rig.target_sends(OK[-1:])
    assert RESPONSE_PHASES[ex.response] == "DONE"
    assert rig.peer.data().endswith(b"\r\n\r\nok")


def test_a_body_in_pieces_and_an_early_answer(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.client_sends(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    assert phases(rig) == "BODY/SENT"
    ex = rig.client.current
    rig.target_sends(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert phases(rig) == "BODY/DONE"
    rig.client_sends(b"cd")
    assert ex is not None and REQUEST_PHASES[ex.request] == "READ"
