"""A stand-in service for the local-stack tests: any program that listens on $PORT.

It is what a `command` service in stack.yaml can be (the local stack runs services written in
anything). Behaviour, from its environment:

* `PORT`: where it listens (127.0.0.1);
* `STANDIN_CRASH=message`: print the message and exit 3 at once (a crash loop);
* `STANDIN_CRASH_IF_EXISTS=path`: the same, while that file exists (a bad deploy);
* `STANDIN_HEALTH=503`: answer `GET /` with that status (an unhealthy target);
* `STANDIN_FAIL_IF_EXISTS=path`: if that file exists at start, answer every path but `/` with
  500 (a bad revision that passes its health checks);
* `STANDIN_IGNORE_TERM=1`: ignore SIGTERM (a replica that does not stop when asked).

`GET /` answers 200 `ok`; `GET /whoami` answers `<pid> <port>`. SIGTERM: finish in-flight
requests, exit 0.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_FAIL_FILE = os.environ.get("STANDIN_FAIL_IF_EXISTS")
FAILING = bool(_FAIL_FILE and os.path.exists(_FAIL_FILE))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, body = 200, b"ok"
        if self.path == "/":
            status = int(os.environ.get("STANDIN_HEALTH", "200"))
        elif FAILING:
            status, body = 500, b"broken revision"
        elif self.path == "/whoami":
            body = f"{os.getpid()} {self.server.server_address[1]}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    crash = os.environ.get("STANDIN_CRASH")
    crash_file = os.environ.get("STANDIN_CRASH_IF_EXISTS")
    if crash_file and os.path.exists(crash_file):
        crash = f"refusing to start: {crash_file} exists"
    if crash:
        print(crash, flush=True)
        sys.exit(3)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = False  # finish in-flight requests on shutdown
    if os.environ.get("STANDIN_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"standin listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
