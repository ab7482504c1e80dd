"""groupcommit.apply_each, the pure core of a batch inside its transaction (a recording fake
for the statements): one savepoint for a batch that succeeds; a second pass, each write in its
own savepoint, when one raises."""

from __future__ import annotations

from typing import Any

from microforum.services.groupcommit import (
    BATCH_SAVEPOINT,
    RELEASE,
    RELEASE_BATCH,
    ROLLBACK_BATCH,
    ROLLBACK_TO,
    SAVEPOINT,
    Write,
    apply_each,
    opening,
)


class Table:
    """Rows written by the fake writes, undone as the savepoint statements say (a stack)."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.marks: list[tuple[str, int]] = []
        self.said: list[str] = []

    def execute(self, sql: str) -> None:
        self.said.append(sql)
        name = sql.rsplit(" ", 1)[1]
        if sql.startswith("SAVEPOINT"):
            self.marks.append((name, len(self.rows)))
        elif sql.startswith("ROLLBACK TO"):
            index = max(i for i, (mark, _) in enumerate(self.marks) if mark == name)
            del self.rows[self.marks[index][1] :]
            del self.marks[index + 1 :]
        elif sql.startswith("RELEASE"):
            index = max(i for i, (mark, _) in enumerate(self.marks) if mark == name)
            del self.marks[index:]


def _add(table: Table, *, row: str) -> str:
    table.rows.append(row)
    if row.startswith("bad"):
        raise ValueError(row)
    return row


def _writes(*rows: str) -> list[Write]:
    return [(_add, {"row": row}) for row in rows]


def _translate(exc: Exception) -> Exception:
    return RuntimeError(f"translated {exc}")


def test_a_batch_that_succeeds_costs_one_savepoint() -> None:
    table = Table()
    outcomes = apply_each(_writes("a", "b", "c"), table.execute, table, _translate)
    assert outcomes == [(True, "a"), (True, "b"), (True, "c")]
    assert table.said == [BATCH_SAVEPOINT] and table.rows == ["a", "b", "c"]


def test_a_write_that_raises_is_undone_alone_in_a_second_pass() -> None:
    table = Table()
    outcomes: list[Any] = apply_each(_writes("a", "bad", "c"), table.execute, table, _translate)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert outcomes[0][1] == "a" and outcomes[2][1] == "c"
    assert str(outcomes[1][1]) == "translated bad"
    assert table.rows == ["a", "c"]  # the first pass undone whole, the failing write alone
    assert table.said[:3] == [BATCH_SAVEPOINT, ROLLBACK_BATCH, RELEASE_BATCH]
    assert table.said[3:] == [SAVEPOINT, SAVEPOINT, ROLLBACK_TO, RELEASE, SAVEPOINT]
    assert not [mark for mark, _ in table.marks if mark == "batch"]  # the writes' do not nest in it


def test_a_batch_of_one_needs_no_savepoint() -> None:
    table = Table()
    assert apply_each(_writes("a"), table.execute, table, _translate) == [(True, "a")]
    assert table.said == []


def test_a_batch_opened_by_its_store_does_not_set_its_savepoint_again() -> None:
    table = Table()
    assert opening(_writes("a", "b")) == BATCH_SAVEPOINT and opening(_writes("a")) is None
    table.execute(BATCH_SAVEPOINT)  # sent by the store with its BEGIN
    outcomes: list[Any] = apply_each(_writes("a", "bad"), table.execute, table, _translate, opened=True)
    assert [ok for ok, _ in outcomes] == [True, False] and table.rows == ["a"]
    assert table.said[:3] == [BATCH_SAVEPOINT, ROLLBACK_BATCH, RELEASE_BATCH]
