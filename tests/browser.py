"""Headless Chromium through Selenium (Debian's chromium and chromium-driver, which the
Makefile installs: missing is a failure, never a skip)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: where browser tests keep their screenshots
ARTIFACTS = Path(
    os.environ.get("SCATLAS_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


def chromium(width: int = 1400, height: int = 2400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("chromium and chromium-driver are needed (make setup installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)
