"""Driving the web console in a real browser: headless Chromium from Debian's packages
(``chromium``, ``chromium-driver``) through Selenium, for the browser test and the
screenshot script (``python -m benchmarks screenshots``).

Nothing is downloaded: Selenium is pointed at the system's chromedriver and Chromium,
which run headless with a fresh profile in a temporary directory, no background
networking, no component updates, no sync. Downloads go to a directory the caller
names. Every wait is WebDriverWait's bounded polling of the page (the only way to
wait on a page's state from outside it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30.0
"""Seconds any one wait on the page may take."""
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
)


def missing() -> str | None:
    """Why the browser cannot run here (None: it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(downloads: Path, *, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver whose downloads land in ``downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="s3lite-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``condition(driver)`` until it is truthy (its value is returned), at most
    ``timeout`` seconds; the TimeoutException says ``what`` was awaited."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        condition, f"timed out waiting for {what}"
    )


def log_in(driver: Any, url: str, access_key: str, secret: str) -> None:
    """Open the console at ``url`` (the gateway's), log in, wait for the page."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/_console/")
    driver.find_element(By.ID, "access-key").send_keys(access_key)
    driver.find_element(By.ID, "secret").send_keys(secret)
    driver.find_element(By.ID, "login-button").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-ready]"), "the console")


def ring_owners(driver: Any) -> list[str]:
    """The owner of each sector as the page draws it (sector order)."""
    owners: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#ring path.sector'),"
        " p => p.getAttribute('data-owner'))"
    )
    return owners


def open_tab(driver: Any, name: str) -> None:
    """Click the console's tab ``name`` (ring, nodes, objects, keys)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'nav a[data-tab="{name}"]').click()
    wait_for(
        driver,
        lambda d: d.find_element(By.ID, f"tab-{name}").is_displayed(),
        f"the {name} tab",
    )


def wait_for_ring(driver: Any, nodes: int) -> list[str]:
    """Wait until the ring shows 360 sectors owned by ``nodes`` nodes; the owners."""

    def drawn(d: Any) -> list[str] | None:
        owners = ring_owners(d)
        return owners if len(owners) == 360 and len(set(owners) - {None}) == nodes else None

    owners: list[str] = wait_for(driver, drawn, f"360 sectors owned by {nodes} nodes")
    return owners


def join(driver: Any, node_url: str, timeout: float = 120.0) -> tuple[str, int]:
    """Start a join of ``node_url`` from the ring tab and wait for its end; (the new
    node's id, how many sectors the page saw moving to it)."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "join-node")
    field.clear()
    field.send_keys(node_url)
    driver.find_element(By.ID, "join-button").click()
    panel = driver.find_element(By.ID, "join-panel")
    node_id: str = wait_for(
        driver, lambda d: panel.get_attribute("data-joined"), "the join", timeout
    )
    return node_id, int(panel.get_attribute("data-moved"))


def query(driver: Any, css: str, what: str = "getAttribute('data-node')") -> Any:
    """``element.<what>`` of the first element matching ``css`` (None if there is
    none), read in the page in one step: the console redraws its tables on every
    poll, so a WebElement found earlier may be gone by the time it is read."""
    return driver.execute_script(
        f"const e = document.querySelector(arguments[0]); return e ? e.{what} : null;", css
    )


def click(driver: Any, css: str, what: str) -> None:
    """Click the first element matching ``css`` once there is one (found and clicked
    in one step in the page, for the same reason as :func:`query`)."""
    wait_for(
        driver,
        lambda d: d.execute_script(
            "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;", css
        ),
        what,
    )


def wait_rows(driver: Any, css: str, count: int, what: str) -> None:
    """Wait until exactly ``count`` elements match ``css``."""
    wait_for(
        driver,
        lambda d: (
            d.execute_script("return document.querySelectorAll(arguments[0]).length", css) == count
        ),
        what,
    )
