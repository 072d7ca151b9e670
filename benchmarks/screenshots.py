"""``python -m benchmarks screenshots``: pictures of the web console for the README.

Starts a gateway over eight node processes and a ninth node (tests/processes.py, on
127.0.0.1, data in a temporary directory removed at the end), uploads objects of
mixed sizes through S3 so that the nodes hold bytes, then, in headless Chromium
(tests/browser.py), logs in and saves:

    docs/console-ring-before.png   the ring and its legend, eight nodes
    docs/console-ring-after.png    the same after the ninth node joined from the page
    docs/console-nodes.png         the nodes tab after the join
    docs/console-objects.png       a bucket's listing and one object's parts

Needs ``chromium`` and ``chromium-driver`` from Debian's packages (``make
screenshots`` says so if they are missing).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread
from tests import browser
from tests.processes import Service, running_service
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET, UNSIGNED, SignedSession

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NODES = 8
BUCKET = "photos"
OBJECTS = 60


async def fill(service: Service, objects: int) -> None:
    """``objects`` objects of lognormal sizes (median 256 KiB), some in folders."""
    rng = random.Random(360)
    async with aiohttp.ClientSession() as client:
        signed = SignedSession(client, payload=UNSIGNED)
        async with signed.request("PUT", service.url(BUCKET)) as response:
            response.raise_for_status()
        for index in range(objects):
            size = min(int(rng.lognormvariate(12.5, 1.0)), 8 << 20)
            folder = rng.choice(["", "2026/", "2026/march/", "raw/"])
            key = f"{folder}img-{index:03d}.jpg"
            async with signed.request(
                "PUT", service.url(BUCKET, key), data=rng.randbytes(size)
            ) as response:
                response.raise_for_status()


def shoot(service: Service, downloads: Path, output: Path) -> list[Path]:
    from selenium.webdriver.common.by import By

    saved = []

    def save(name: str) -> None:
        path = output / name
        driver.save_screenshot(str(path))
        saved.append(path)

    with browser.chromium(downloads, width=1360, height=820) as driver:
        browser.log_in(driver, service.gw.url, ROOT_ACCESS, ROOT_SECRET)
        browser.wait_for_ring(driver, NODES)
        save("console-ring-before.png")
        browser.join(driver, service.nodes[NODES].url)
        browser.wait_for_ring(driver, NODES + 1)
        browser.wait_rows(driver, "#ring-legend tbody tr", NODES + 1, "the legend of nine nodes")
        save("console-ring-after.png")
        browser.open_tab(driver, "nodes")
        browser.wait_rows(driver, "#nodes tbody tr", NODES + 1, "nine nodes")
        save("console-nodes.png")
        browser.open_tab(driver, "objects")
        browser.click(driver, '#objects tr[data-folder="raw/"] a', "the folder raw/")
        browser.click(driver, '#objects tr[data-key^="raw/"] button.details', "details")
        browser.wait_for(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#details-parts tr.part"), "parts"
        )
        driver.set_window_size(1360, 1420)
        save("console-objects.png")
    return saved


async def run(output: Path, objects: int) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="s3lite-screenshots-") as scratch:
        root = Path(scratch)
        async with running_service(root / "cluster", nodes=NODES, spares=1) as service:
            await fill(service, objects)
            downloads = root / "downloads"
            downloads.mkdir()
            return await anyio.to_thread.run_sync(shoot, service, downloads, output)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks screenshots")
    parser.add_argument("--output", type=Path, default=DOCS, help=f"default {DOCS}")
    parser.add_argument("--objects", type=int, default=OBJECTS, help="objects uploaded first")
    args = parser.parse_args(argv)
    reason = browser.missing()
    if reason is not None:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    for path in anyio.run(run, args.output, args.objects, backend="asyncio"):
        print(f"saved {path}")
    return 0
