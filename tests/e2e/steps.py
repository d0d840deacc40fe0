"""A browser test's steps: each saves a screenshot named after it, numbered in order; a step
that fails saves the page's HTML beside its screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page


class Steps:
    def __init__(self, page: Page, base_url: str, folder: Path):
        self.page, self.base_url, self.folder = page, base_url, folder
        self.count = 0

    def go(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    @contextmanager
    def step(self, name: str) -> Iterator[Page]:
        self.count += 1
        stem = self.folder / f"{self.count:02d}-{name}"
        try:
            yield self.page
        except BaseException:
            stem.with_suffix(".html").write_text(self.page.content(), encoding="utf-8")
            self.page.screenshot(path=f"{stem}-failed.png", full_page=True)
            raise
        self.page.screenshot(path=f"{stem}.png", full_page=True)

    def log_in(self, username: str, password: str) -> None:
        with self.step("log-in") as page:
            self.go("/")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_selector("text=Site administration")
