"""The console `up` serves, in a real headless Chromium (Debian's `chromium`, driven by playwright).

One stack of stand-in services runs for the module: two target groups, four rules of three
kinds. The tests follow its life: the token (401 without it, as Jupyter), the page and its
picture, the access log and its filters, a frozen target turning unhealthy on the page, a
restart from the page's button, and a screenshot kept in the test's temporary directory.

Skipped, with the reason, where Chromium or playwright is missing (`.ci/run` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from up_helpers import STANDIN, UpProcess, status, up

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("no chromium here (apt-get install chromium; .ci/run does)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
# Chromium with nothing that reaches out: no GPU, no QUIC, no first-run, update or sync traffic.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

SERVICE = f"""
    command: [{json.dumps(sys.executable)}, {json.dumps(str(STANDIN))}]
    desired_count: 2
    health_check: {{path: /, interval: 5, timeout: 2, healthy_threshold: 2, unhealthy_threshold: 2}}
    deregistration_delay: 1
"""
# `web` keeps an unhealthy target (a grace period of ten minutes) so the page can show it.
STACK = f"""
name: console-test
services:
  web:{SERVICE}    deployment: {{health_check_grace_period: 600}}
  api:{SERVICE}
listener:
  port: 80
  default_action: {{forward: web}}
  rules:
    - priority: 10
      conditions: [{{path_pattern: ["/api/*"]}}]
      action: {{forward: api}}
    - priority: 20
      conditions: [{{http_header: {{name: X-Canary, values: ["1"]}}}}]
      action: {{forward: {{target_groups: [{{name: api, weight: 1}}, {{name: web, weight: 9}}]}}}}
    - priority: 30
      conditions: [{{path_pattern: ["/teapot"]}}]
      action: {{fixed_response: {{status_code: 418, message_body: short and stout}}}}
"""
# At least one log row, and every one passes the test (a JavaScript expression of `r`).
EVERY_ROW = (
    "(rows => rows.length > 0 && rows.every(r => r.cells.length > 3 && %s))"
    "([...document.querySelectorAll('#logs tbody tr')])"
)
PRIORITIES = ("10", "20", "30", "default")
GROUPS = ("web", "api")


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "stack.yaml"
    path.write_text(STACK)
    return path


@pytest.fixture(scope="module")
def stack(stack_file: Path) -> Iterator[UpProcess]:
    with up(stack_file) as process:
        process.wait_ready()
        yield process


@pytest.fixture(scope="module")
def console_url(stack: UpProcess, stack_file: Path) -> str:
    control = json.loads((stack_file.parent / ".microforum" / "control.json").read_text())
    assert control["console_url"] in stack.output  # printed at start, as Jupyter prints its URL
    return str(control["console_url"])


@pytest.fixture(scope="module")
def page(console_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        # bypass_csp: the page forbids eval, which playwright's wait_for_function uses.
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        base = console_url.split("/?token=")[0]
        page.route("**/*", lambda route: _only_local(route, base))
        page.goto(console_url)
        yield page
        browser.close()


OUTSIDE: list[str] = []  # every request the page made elsewhere than the console


def _only_local(route: Any, base: str) -> None:
    if route.request.url.startswith(base + "/"):
        route.continue_()
    else:
        OUTSIDE.append(route.request.url)
        route.abort()


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_without_the_token_the_console_answers_401(console_url: str) -> None:
    base, token = console_url.split("/?token=")
    assert get(base + "/")[0] == 401
    assert get(base + "/?token=wrong")[0] == 401
    code, body = get(base + "/api/state")
    assert code == 401 and "console_url" in json.loads(body)["error"]
    assert get(base + "/api/state", {"Authorization": f"token {token}"})[0] == 200
    # Another Host (DNS rebinding) is refused even with the token; a restart needs the header.
    assert get(base + "/api/state", {"Authorization": f"token {token}", "Host": "evil.example"})[0] == 403
    assert get(base + "/api/restart?service=api", {"Authorization": f"token {token}"}, "POST")[0] == 403


def test_the_picture_lists_every_rule_and_target_group(page: Any) -> None:
    page.wait_for_selector("svg.picture .target[data-state=healthy]")
    for priority in PRIORITIES:
        assert page.locator(f"svg.picture .rule[data-priority='{priority}']").count() == 1
    for group in GROUPS:
        assert page.locator(f"svg.picture .group[data-group='{group}']").count() == 1
        assert page.locator(f"section.group[data-group='{group}'] tr[data-target]").count() == 2
    text = page.locator("svg.picture").text_content()
    for words in ("Path is /api/*", "Header X-Canary is 1", "fixed response 418", "forward to web"):
        assert words in text


def test_the_access_log_shows_trace_ids_and_filters_by_group(page: Any, stack: UpProcess) -> None:
    for path in ("/api/users", "/teapot", "/", "/api/x"):
        get(stack.url + path)
    page.wait_for_function("document.querySelectorAll('#logs tbody tr td').length > 20")
    assert "Root=1-" in page.locator("#logs tbody").text_content()
    page.select_option("#filter-group", "api")
    page.wait_for_function(EVERY_ROW % "r.cells[3].textContent === 'api'")
    page.select_option("#filter-group", "")
    page.select_option("#filter-status", "elb")  # the teapot: answered by the load balancer
    page.wait_for_function(EVERY_ROW % "r.cells[1].textContent.startsWith('418')")
    page.select_option("#filter-status", "")


def test_a_frozen_target_turns_unhealthy_on_the_page(page: Any, stack_file: Path) -> None:
    victim = next(r for r in status(stack_file)["replicas"] if r["service"] == "web")
    os.kill(victim["pid"], signal.SIGSTOP)  # alive but silent: its health checks time out
    try:
        row = f"section.group[data-group='web'] tr[data-target='{victim['id']}'][data-state=unhealthy]"
        page.wait_for_selector(row, timeout=45_000)
        assert "Target.Timeout" in page.locator(row).text_content()
        picture = f"svg.picture .target[data-target='{victim['id']}']"
        page.wait_for_selector(f"{picture}[data-state=unhealthy]", timeout=5_000)
    finally:
        os.kill(victim["pid"], signal.SIGCONT)


def test_a_restart_from_the_button_finishes(page: Any, stack_file: Path) -> None:
    before = {r["id"] for r in status(stack_file)["replicas"] if r["service"] == "api"}
    page.click("section.group[data-group='api'] button")
    page.wait_for_selector("section.group[data-group='api'][data-restart=done]", timeout=60_000)
    text = page.locator("section.group[data-group='api'] .restart-text").text_content()
    assert text.startswith("restart finished")
    after = {r["id"] for r in status(stack_file)["replicas"] if r["service"] == "api"}
    assert after and not after & before


def test_a_screenshot_is_kept(page: Any, stack: UpProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    for _ in range(30):
        get(stack.url + "/api/users")
    time.sleep(2.5)  # one more sample of the figures, so the charts have a point after the restart
    path = tmp_path_factory.mktemp("screenshots") / "console.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"console screenshot: {path}")
    assert path.stat().st_size > 10_000


def test_the_page_asked_nothing_of_the_internet(page: Any) -> None:
    """No CDN, no font service: the console works offline."""
    assert OUTSIDE == []
