"""The request path's roles (pool.Ticking, pool.BatchingClient, pool.ExchangeEvents,
exchange.ClientSide): native base classes whose methods only raise NotImplementedError, played
by the classes that inherit them. A method a role gains and its player does not define would
raise on the request path: each player defines every method of its roles."""

from __future__ import annotations

import pytest

from microforum.lb import context, exchange, pool, proxy

ROLES = [
    (pool.Ticking, context.ProxyContext),
    (pool.BatchingClient, proxy.ClientConnection),
    (exchange.ClientSide, proxy.ClientConnection),
    (pool.ExchangeEvents, exchange.Exchange),
]


@pytest.mark.parametrize(("role", "player"), ROLES, ids=lambda c: c.__name__)
def test_each_player_defines_every_method_of_its_role(role: type, player: type) -> None:
    assert issubclass(player, role)
    methods = [name for name, member in vars(role).items() if callable(member) and not name.startswith("__")]
    assert methods or role is pool.Ticking
    for name in methods:
        assert getattr(player, name) is not vars(role)[name], f"{player.__name__} lacks {name}"


@pytest.mark.parametrize(("role", "player"), ROLES, ids=lambda c: c.__name__)
def test_each_role_declares_its_attributes_as_its_own_slots_not_its_players(role: type, player: type) -> None:
    # (declared once, on the role: interpreted, a slot of the role; compiled, a field of its struct)
    for name in role.__annotations__:
        assert name in role.__slots__
        assert name not in vars(player).get("__slots__", ())
