"""A headless Chromium that reaches nothing but this machine, for the app's browser test and benchmarks/bm_app.py.

Why one place: the flags that keep Debian's Chromium off the (closed) network and the route guard that records and
refuses every request to another host must be the same wherever the page is measured.
"""
from __future__ import annotations

import os
import shutil

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")


def chromium() -> str | None:
    """The system Chromium ($CKPP_CHROMIUM first), or None."""
    for path in (os.environ.get("CKPP_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                 shutil.which("chromium-browser")):
        if path and os.path.isfile(path):
            return path
    return None


def local_only_context(playwright, executable: str, outside: list, **context_kw):
    """(browser, context) whose every request to another host is appended to `outside` and refused."""
    browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
    ctx = browser.new_context(**context_kw)

    def guard(route):
        if route.request.url.startswith(LOCAL):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    ctx.route("**/*", guard)
    return browser, ctx
