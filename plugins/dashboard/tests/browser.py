"""Headless Chromium from the distribution's packages, driven by Selenium;
no browser is downloaded from anywhere."""
from __future__ import annotations

import os
import shutil
import struct
import zlib

import pytest


def _executable(env: str, *names: str) -> str | None:
    """``$env`` if set (it must then name an executable file), else the first
    of ``names`` on PATH."""
    given = os.environ.get(env)
    if given:
        return given if os.path.isfile(given) and os.access(given, os.X_OK) else None
    return next((p for p in map(shutil.which, names) if p), None)


CHROMIUM = _executable("CHROMIUM", "chromium", "chromium-browser")
CHROMEDRIVER = _executable("CHROMEDRIVER", "chromedriver")

#: Chromium for tests and measurements: software drawing (CI machines have no
#: GPU), no background services (nothing may reach the network); timers of a
#: hidden page stay unthrottled so that a test page keeps drawing.  (Flags
#: against GPU compositing and smooth scrolling were measured too: no less
#: CPU per update.)
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--disable-extensions", "--disable-background-networking", "--disable-component-update",
    "--disable-default-apps", "--disable-sync", "--no-first-run", "--mute-audio",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
)


def need_browser() -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no chromium/chromedriver found: install the distribution's packages "
                    "(apt-get install chromium chromium-driver) or set CHROMIUM and "
                    "CHROMEDRIVER to their executables")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")


def make_driver(width: int = 1400, height: int = 900, extra_flags: tuple[str, ...] = (),
                binary: str | None = None):
    """A headless Chromium (``binary``, default: the one found); the caller
    quits it.  Page loads and scripts get bounded timeouts generous enough
    for a loaded 2-core machine."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary or CHROMIUM
    for arg in (*CHROMIUM_FLAGS, f"--window-size={width},{height}", *extra_flags):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
    except BaseException:
        driver.quit()
        raise
    return driver


def png_distinct_bytes(png: bytes) -> int:
    """How many distinct byte values the decompressed pixel rows of a PNG hold:
    a blank image has a handful, a drawn image many."""
    pos, idat = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    return len(set(zlib.decompress(idat)))
