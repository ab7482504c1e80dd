"""Configuration files generated for each run: nginx, HAProxy and microforum stacks (pure).

Ports are dynamic, so every file is rendered at run time into the run's temporary directory.
All three load balancers log every request and set X-Forwarded-For/-Proto/-Port, as the ALB
does, and keep connections to their targets alive (a pool), so the comparison is like for like.
"""

from __future__ import annotations

from typing import Any

# The original listener's routes: path prefix -> service (the ALB rules /api/users* etc.).
ROUTES = (("/api/users", "users"), ("/api/threads", "threads"), ("/api/posts", "posts"))

_NGINX_PROXY = """\
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Port $server_port;
"""


def nginx_conf(tmp: str, port: int, upstreams: dict[str, int], routes: dict[str, str]) -> str:
    """nginx.conf: one worker, access log on, `routes` (path prefix -> upstream name)."""
    ups = "".join(
        f"  upstream {name} {{ server 127.0.0.1:{p}; keepalive 64; }}\n" for name, p in upstreams.items()
    )
    locs = "".join(
        f"    location {prefix} {{ proxy_pass http://{name}; }}\n" for prefix, name in routes.items()
    )
    if "/" not in routes:
        locs += "    location / { return 404; }\n"  # no rule matched (stack default: fixed 404)
    temps = "".join(
        f"  {kind}_temp_path {tmp}/nginx-{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "worker_processes 1;\ndaemon off;\n"
        f"pid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        f"  access_log {tmp}/nginx-access.log;\n{temps}{ups}"
        f"  server {{\n    listen 127.0.0.1:{port};\n{_NGINX_PROXY}{locs}  }}\n"
        "}\n"
    )


def haproxy_cfg(port: int, backend_port: int) -> str:
    """haproxy.cfg: one thread, HTTP mode, access log to stdout, one backend server."""
    return (
        "global\n  nbthread 1\n  maxconn 4096\n  log stdout format raw local0\n"
        "defaults\n  mode http\n  log global\n  option httplog\n  option forwardfor\n"
        "  http-reuse safe\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
        f"frontend fe\n  bind 127.0.0.1:{port}\n"
        "  http-request set-header X-Forwarded-Proto http\n"
        "  http-request set-header X-Forwarded-Port %[dst_port]\n"
        "  default_backend be\n"
        f"backend be\n  server s1 127.0.0.1:{backend_port}\n"
    )


def _local(port: int, data_dir: str) -> dict[str, Any]:
    return {"port": port, "data_dir": data_dir}


def lb_stack(port: int, data_dir: str, backend_argv: list[str]) -> dict[str, Any]:
    """A stack whose one service is the trivially fast backend, the default action to it."""
    return {
        "name": "bench-lb",
        "services": {"backend": {"command": backend_argv, "desired_count": 1}},
        "listener": {"default_action": {"forward": "backend"}, "rules": []},
        "local": _local(port, data_dir),
    }


def forum_stack(port: int, data_dir: str, databases: dict[str, str] | None = None) -> dict[str, Any]:
    """users, threads and posts with one replica each, the original rules, no monolith.

    `databases` maps a service to its DATABASE_URL (PostgreSQL); SQLite files otherwise.
    """
    services: dict[str, Any] = {}
    for _, name in ROUTES:
        body: dict[str, Any] = {"desired_count": 1}
        if databases and name in databases:
            body["environment"] = {"DATABASE_URL": databases[name]}
        services[name] = body
    return {
        "name": "bench-forum",
        "services": services,
        "listener": {
            # No monolith here: a request no rule matches gets the fixed 404 nginx also gives.
            "default_action": {"fixed_response": {"status_code": 404, "content_type": "text/plain"}},
        },
        "local": _local(port, data_dir),
    }


def with_local(stack: dict[str, Any], port: int, data_dir: str) -> dict[str, Any]:
    """`stack` (e.g. the repository's stack.yaml) listening on `port`, data in `data_dir`."""
    local = dict(stack.get("local") or {})
    local.update(_local(port, data_dir))
    return {**stack, "local": local}
