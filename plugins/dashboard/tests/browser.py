"""Headless Chromium from the distribution's packages, driven by Selenium;
no browser is downloaded from anywhere."""
from __future__ import annotations

import os
import shutil
import struct
import zlib

import pytest

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")


def need_browser() -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no chromium/chromedriver found: install the distribution's packages "
                    "(apt-get install chromium chromium-driver) or set CHROMIUM and "
                    "CHROMEDRIVER")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")


def make_driver(width: int = 1400, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


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
