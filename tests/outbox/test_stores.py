"""The stores against the OutboxStore contract: order, atomic steps, seqs never reused, restarts."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from ocpp_trio.outbox import MemoryStore, NewMessage, Outbox, OutboxStore, SQLiteStore


def msg(n: int, action: str = "MeterValues", ref: int | None = None) -> NewMessage:
    return NewMessage(
        protocol="ocpp1.6",
        action=action,
        payload={"n": n, "text": "é ünïcode"},
        created=1000.0 + n,
        transaction_of=ref,
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_store_contract(kind: str, tmp_path: Path) -> None:
    store: OutboxStore = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "o.db")
    a = await store.append("A", [msg(1, "StartTransaction"), msg(2)])
    b = await store.append("B", [msg(3)])
    assert [m.seq for m in a] == [1, 2]
    assert b[0].seq == 3
    c = await store.append("A", [msg(4, ref=a[0].seq)], delete=[a[1].seq])
    assert c[0].seq == 4
    assert [m.payload["n"] for m in await store.load("A")] == [1, 4]
    fixed = replace(c[0], payload={"n": 4, "transactionId": 7}, transaction_of=None, attempts=2)
    await store.apply(delete=[a[0].seq], update=[fixed, replace(fixed, seq=99)])
    (left,) = await store.load("A")
    assert left == replace(fixed, payload={"n": 4, "transactionId": 7})
    await store.apply(delete=[4])
    assert await store.load("A") == []
    # the newest rows were deleted: their seqs are still never given again
    (again,) = await store.append("A", [msg(5)])
    assert again.seq == 5
    assert [m.station for m in await store.load("B")] == ["B"]
    await store.aclose()
    if isinstance(store, SQLiteStore):
        reopened = SQLiteStore(store.path, synchronous="NORMAL")
        assert [(m.seq, m.payload) for m in await reopened.load("A")] == [(5, msg(5).payload)]
        (after,) = await reopened.append("A", [msg(6)])
        assert after.seq == 6
        await reopened.aclose()
        await reopened.aclose()  # idempotent


async def test_sqlite_refuses_what_is_not_json(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    bad = replace(msg(1), payload={"x": object()})
    with pytest.raises(TypeError):
        await store.append("A", [bad])
    assert await store.load("A") == []
    await store.aclose()
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]


def test_outbox_checks_its_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="message_attempts"):
        Outbox(MemoryStore(), message_attempts=0)
    with pytest.raises(ValueError, match="max_queue_size"):
        Outbox(MemoryStore(), max_queue_size=0)
    with pytest.raises(TypeError, match="queued_actions"):
        Outbox(MemoryStore(), queued_actions="Heartbeat")
    with pytest.raises(TypeError, match="store"):
        Outbox(42)  # type: ignore[arg-type]
    assert isinstance(Outbox(tmp_path / "o.db").store, SQLiteStore)
    assert Outbox(MemoryStore(), max_queue_size=math.inf).max_queue_size == math.inf
