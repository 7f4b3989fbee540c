"""A support person finds a forgotten number by email in the real page, in headless Chromium
(Debian's `chromium` and `chromium-driver`, driven by selenium), from the keyboard alone.

The screenshot is kept under the test's tmp folder and copied to tests/artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.wait import WebDriverWait

from tests.helpers.api import TOKENS, ApiProcess, number_customers
from tests.helpers.service import Scenario

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NEEDS = (
    "the support page test needs Debian's Chromium and its driver: "
    "apt-get install -y chromium chromium-driver (scripts/setup installs them)"
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(f"{NEEDS}; missing: {'chromium' if chromium is None else 'chromedriver'}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,900"):
        options.add_argument(argument)
    # A driver path given: selenium starts it and downloads nothing.
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def focused_id(browser: WebDriver) -> str:
    return str(browser.switch_to.active_element.get_attribute("id") or "")


def test_support_finds_a_forgotten_number_by_email(
    scenario: Scenario, tmp_path: Path, browser: WebDriver
) -> None:
    numbered = number_customers(scenario, tmp_path)
    api = ApiProcess(scenario, tmp_path).start()  # the login cookie as shipped: Secure, __Host-
    wait = WebDriverWait(browser, 20)
    try:
        browser.get(f"{api.url}/")
        wait.until(ready.presence_of_element_located((By.ID, "token")))
        assert focused_id(browser) == "token"  # the sign-in field has the focus
        browser.switch_to.active_element.send_keys(TOKENS.searcher + Keys.ENTER)

        wait.until(ready.presence_of_element_located((By.ID, "q")))
        assert focused_id(browser) == "q"
        tab_order = []
        for _ in range(4):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            tab_order.append(browser.switch_to.active_element.text or focused_id(browser))
        assert tab_order == ["region", "Search", "number", "Check"]

        browser.find_element(By.ID, "q").send_keys("  Jane.Doe@Example.com" + Keys.ENTER)
        table = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "table")))
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        found = {r.find_element(By.CSS_SELECTOR, "td.number").text for r in rows}
        assert found == {numbered.number_of("webshop/C1"), numbered.number_of("crm/A/7")}
        assert "2 customers found by email" in table.text
        assert "jane.doe" not in browser.page_source.lower()
        screenshot = tmp_path / "support-page.png"
        assert browser.save_screenshot(str(screenshot))
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, ARTIFACTS / "support-page.png")

        number = numbered.number_of("webshop/C1")
        typo = number[:-1] + str((int(number[-1]) + 5) % 10)
        browser.find_element(By.ID, "number").send_keys(typo + Keys.ENTER)
        result = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#check-result p")))
        assert f"the check digit should be {number[-1]}" in result.text
        assert "probably a typo" in result.text
        assert focused_id(browser) == "number"  # back where the correction is typed
        assert browser.save_screenshot(str(tmp_path / "support-page-check.png"))
        shutil.copyfile(tmp_path / "support-page-check.png", ARTIFACTS / "support-page-check.png")
    finally:
        assert api.stop() == 0
