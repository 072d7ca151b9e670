"""The web console in a real browser (headless Chromium from Debian's packages, driven
by Selenium; tests/browser.py), against real processes: a gateway over eight node
processes, and a ninth node process to join.

In one run: only the login page before logging in; the cookie as the browser holds it
(HttpOnly: no script sees it; SameSite=Strict; Path=/_console); a call without the
CSRF token refused even from the console's own page; eight nodes and 360 sectors
drawn; a bucket made; a file uploaded (a multipart upload: it is larger than a part)
with its progress bar, downloaded byte-identical, and its parts' nodes shown; a small
file uploaded in one request and deleted; a key made (its secret shown once), granted
read on the bucket and revoked; a join started from the page, its sectors seen moving
and then owned by the new node; a node stopped with SIGSTOP shown down.

It is skipped, saying why, only when Chromium or its driver is not installed and CI
is not set; under CI (which installs them: .ci/run) a missing browser fails it.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests import browser
from tests.processes import Service, running_service
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET

pytestmark = pytest.mark.anyio

NODES = 8
PART = 8 << 20
TEST_TIMEOUT = 240.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def chromium_present() -> None:
    reason = browser.missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run under CI, but {reason}")
    pytest.skip(f"no browser to drive: {reason}")


def scenario(service: Service, downloads: Path, stop: Callable[[int], None]) -> None:
    """Everything the browser does (run in a worker thread: Selenium blocks)."""
    from selenium.webdriver.common.by import By

    url = service.gw.url
    spare = service.nodes[NODES]
    with browser.chromium(downloads) as driver:
        # Before logging in: the login page, whatever is asked for.
        for path in ("/_console/", "/_console/static/app.js", "/_console/api/cluster"):
            driver.get(url + path)
            assert driver.find_elements(By.ID, "login") or "NotLoggedIn" in driver.page_source
            assert not driver.find_elements(By.ID, "ring")
        browser.log_in(driver, url, ROOT_ACCESS, ROOT_SECRET)
        [cookie] = driver.get_cookies()
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
            True, "Strict", "/_console"
        )  # fmt: skip
        assert driver.execute_script("return document.cookie") == ""
        refused = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('/_console/api/keys', {method: 'POST', body: '{}'})"
            ".then(r => r.json().then(j => done([r.status, j.error])));"
        )
        assert refused == [403, "BadCsrfToken"]

        # The ring: eight nodes, 360 sectors.
        owners = browser.wait_for_ring(driver, NODES)
        legend = driver.find_elements(By.CSS_SELECTOR, "#ring-legend tbody tr")
        assert sorted(row.get_attribute("data-node") for row in legend) == sorted(set(owners))

        # A bucket, a file uploaded in parts, downloaded, its parts shown.
        browser.open_tab(driver, "objects")
        driver.find_element(By.ID, "bucket-name").send_keys("browser")
        driver.find_element(By.ID, "bucket-create").click()
        browser.wait_for(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-bucket="browser"].active'),
            "the new bucket",
        )  # fmt: skip
        data = random.Random(8).randbytes(PART + 123_457)
        source = downloads.parent / "upload" / "ring data.bin"
        source.parent.mkdir()
        source.write_bytes(data)
        driver.find_element(By.ID, "upload-file").send_keys(str(source))
        driver.find_element(By.ID, "upload-button").click()
        status = driver.find_element(By.ID, "upload-status")
        browser.wait_for(
            driver, lambda d: status.get_attribute("data-uploaded") == source.name, "the upload", 60
        )
        progress = driver.find_element(By.ID, "upload-progress").get_attribute("value")
        assert float(progress) == 1.0
        row = f'#objects tr[data-key="{source.name}"]'
        browser.click(driver, f"{row} a.download", "the uploaded object's download link")
        saved = downloads / source.name
        browser.wait_for(
            driver,
            lambda d: saved.exists() and saved.stat().st_size == len(data),
            "the download",
            60,
        )
        assert saved.read_bytes() == data
        browser.click(driver, f"{row} button.details", "the uploaded object's details button")
        parts = browser.wait_for(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, "#details-parts tr.part"),
            "the object's parts",
        )
        assert len(parts) == 2 * (6 + 2)  # two segments (multipart): six data, two parity
        assert {part.get_attribute("data-node") for part in parts} <= set(owners)

        # A small file goes up in one request; deleted, its row goes.
        note = source.parent / "note.txt"
        note.write_bytes(b"a short note\n")
        driver.find_element(By.ID, "upload-file").send_keys(str(note))
        driver.find_element(By.ID, "upload-button").click()
        browser.wait_for(
            driver, lambda d: status.get_attribute("data-uploaded") == note.name, "the small upload"
        )
        small = f'#objects tr[data-key="{note.name}"]'
        browser.click(driver, f"{small} button.danger", "the delete button")
        browser.click(driver, f"{small} button.armed", "the delete button, armed")
        browser.wait_rows(driver, small, 0, "the deleted object's row to go")
        browser.wait_rows(driver, row, 1, "the large object's row to stay")

        # Keys: one made (its secret shown once), granted read, revoked.
        browser.open_tab(driver, "keys")
        driver.find_element(By.ID, "key-name").send_keys("from the browser")
        driver.find_element(By.ID, "key-create").click()
        secret = browser.wait_for(driver, lambda d: browser.query(d, "#new-secret", "textContent"),
                                  "the new key's secret")  # fmt: skip
        made = browser.query(driver, "#new-access-key", "textContent")
        assert len(secret) >= 40
        browser.wait_rows(driver, "#keys tbody tr", 2, "two keys")
        assert secret not in driver.find_element(By.ID, "keys").text
        driver.find_element(By.ID, "grant-bucket").send_keys("browser")
        driver.find_element(By.ID, "grant-allow").click()
        browser.wait_for(
            driver,
            lambda d: (
                f"{made} may now read on browser" in d.find_element(By.ID, "grant-status").text
            ),
            "the grant",
        )
        grants = browser.query(driver, f'#keys tr[data-key="{made}"]', "textContent")
        assert "browser: r" in grants
        key_row = f'#keys tr[data-key="{made}"]'
        browser.click(driver, f"{key_row} button.danger", "the revoke button")
        browser.click(driver, f"{key_row} button.armed", "the revoke button, armed")
        browser.wait_rows(driver, "#keys tbody tr", 1, "the revoked key to go")

        # A join from the page: its sectors move to the new node.
        browser.open_tab(driver, "ring")
        new_node, moved = browser.join(driver, spare.url)
        assert moved > 0
        after = browser.wait_for_ring(driver, NODES + 1)
        assert after.count(new_node) == moved
        assert sum(a != b for a, b in zip(owners, after, strict=True)) == moved

        # A node stopped: shown down.
        browser.open_tab(driver, "nodes")
        victim = service.nodes[2]
        victim_id = browser.wait_for(
            driver,
            lambda d: d.execute_script(
                "return Array.from(document.querySelectorAll('#nodes tbody tr'))"
                ".filter(r => r.textContent.includes(arguments[0]))"
                ".map(r => r.getAttribute('data-node'))[0] || null;",
                victim.url,
            ),
            "the node's row",
        )
        stop(2)
        row = f'#nodes tr[data-node="{victim_id}"]'
        browser.wait_for(
            driver,
            lambda d: browser.query(d, row, "getAttribute('data-state')") == "down",
            "the stopped node shown down",
        )
        browser.open_tab(driver, "ring")
        legend = f'#ring-legend tr[data-node="{victim_id}"]'
        browser.wait_for(
            driver,
            lambda d: "down since" in (browser.query(d, legend, "textContent") or ""),
            "the stopped node down in the legend",
        )
        faded = driver.execute_script(
            "return document.querySelectorAll(arguments[0]).length",
            f'#ring path.sector.down[data-owner="{victim_id}"]',
        )
        assert faded == browser.ring_owners(driver).count(victim_id) > 0


async def test_the_console_in_a_browser(chromium_present: None, tmp_path: Path) -> None:
    stopped: list[Any] = []
    with anyio.fail_after(TEST_TIMEOUT):
        async with running_service(tmp_path / "cluster", nodes=NODES, spares=1) as service:

            def stop(index: int) -> None:
                process = service.nodes[index].process
                process.send_signal(signal.SIGSTOP)
                stopped.append(process)

            downloads = tmp_path / "downloads"
            downloads.mkdir()
            try:
                await anyio.to_thread.run_sync(scenario, service, downloads, stop)
            finally:
                for process in stopped:
                    process.send_signal(signal.SIGCONT)
