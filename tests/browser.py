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
    "--window-size=1400,1000",
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
