"""Settings: flags over environment over defaults, the monolith on the services' files."""

from __future__ import annotations

import os

import pytest

from microforum.errors import UsageError
from microforum.services.settings import load_settings, sqlite_path


def test_defaults(tmp_path: os.PathLike[str]) -> None:
    settings = load_settings("posts", {"DATA_DIR": str(tmp_path)})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 3000, 1)
    assert settings.databases == {"posts": f"sqlite:///{tmp_path}/posts.db"}
    assert settings.peers == {"users": "http://127.0.0.1:8080", "threads": "http://127.0.0.1:8080"}


def test_monolith_uses_the_services_files() -> None:
    settings = load_settings("monolith", {"DATA_DIR": "/srv/forum"})
    assert settings.databases == {r: f"sqlite:////srv/forum/{r}.db" for r in ("users", "threads", "posts")}
    assert settings.peers == {}
    assert sqlite_path(settings.databases["users"]) == "/srv/forum/users.db"


def test_flags_override_environment() -> None:
    env = {
        "PORT": "4000",
        "HOST": "127.0.0.2",
        "DATABASE_URL": "sqlite:///a.db",
        "WORKERS": "3",
        "API_URL": "http://lb:80/",
        "USERS_URL": "http://users:3000",
    }
    settings = load_settings("threads", env, port=5000, database="postgresql://db/forum")
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.2", 5000, 3)
    assert settings.databases == {"threads": "postgresql://db/forum"}
    assert settings.peers == {"users": "http://users:3000", "posts": "http://lb:80"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "-1"}, "PORT: must be 0..65535, got -1"),
        ({"WORKERS": "many"}, "WORKERS: must be a whole number, got 'many'"),
        ({"DATABASE_URL": "sqlite://relative.db"}, "DATABASE_URL: must be sqlite:///"),
        ({"DATABASE_URL": "postgresql://"}, "DATABASE_URL: must be sqlite:///"),
        ({"API_URL": "https://lb"}, "API_URL: must be an http://host:port URL"),
        ({"THREADS_URL": "http://host:port"}, "THREADS_URL: bad port"),
    ],
)
def test_refusals(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        load_settings("users" if "THREADS" not in str(env) else "posts", env)
    assert message in caught.value.message
    assert caught.value.exit_code == 2
