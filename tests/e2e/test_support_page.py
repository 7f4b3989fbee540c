"""A support person finds a forgotten number by email in the real page, in headless Chromium
(Debian's `chromium` and `chromium-driver`, driven by selenium), from the keyboard alone.

The screenshot is kept under the test's tmp folder and copied to tests/artifacts/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.wait import WebDriverWait

from customer_ids.domain.events import now_utc
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from tests.helpers.api import TOKENS, ApiProcess, bearer, number_customers
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


def render_number(value: int) -> str:
    """A well-formed number of the default format (its check digit right), issued or not."""
    context = RenderContext(value, now_utc(), "INDIVIDUAL", "DE")
    return NumberTemplate.parse("CU-{seq:8}-{check:luhn}").render(context)


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


def sign_in(browser: WebDriver, api: ApiProcess, token: str) -> None:
    browser.get(f"{api.url}/")
    WebDriverWait(browser, 20).until(ready.presence_of_element_located((By.ID, "token")))
    browser.find_element(By.ID, "token").send_keys(token + Keys.ENTER)
    WebDriverWait(browser, 20).until(ready.presence_of_element_located((By.ID, "q")))


def test_a_login_posted_from_an_opaque_origin_is_refused(
    scenario: Scenario, tmp_path: Path, browser: WebDriver
) -> None:
    # A page of another site that Chromium gives an opaque origin (a data: URL; a sandboxed
    # frame alike) posts the sign-in form itself: Chromium sends `Origin: null`.
    api = ApiProcess(scenario.create_topics(), tmp_path).start()
    try:
        form = (
            f"<form method=post action='{api.url}/login'>"
            f"<input name=token value='{TOKENS.searcher}'></form>"
            "<script>document.forms[0].submit()</script>"
        )
        browser.get("data:text/html," + quote(form))
        WebDriverWait(browser, 20).until(lambda b: b.current_url.startswith(api.url))
        assert "cross-site form posts are refused" in browser.page_source
        browser.get(f"{api.url}/")  # not signed in: the sign-in form, not the search page
        WebDriverWait(browser, 20).until(ready.presence_of_element_located((By.ID, "token")))
        assert not browser.find_elements(By.ID, "q")
    finally:
        assert api.stop() == 0


def test_a_flood_of_unissued_number_lookups_does_not_stall_the_page(
    scenario: Scenario, tmp_path: Path, browser: WebDriver
) -> None:
    numbered = number_customers(scenario, tmp_path)
    # Without the reverse index a number lookup that misses reads the output topic.
    api = ApiProcess(scenario, tmp_path, CUSTOMER_IDS_REVERSE_INDEX="off").start()
    wanted = numbered.number_of("crm/A/7")

    def page_search() -> float:
        started = time.monotonic()
        # Marks this document: the answer is a new one (the form posts, the page reloads).
        # Chromium reports a replaced node as an inspector error, not as a stale element.
        browser.execute_script("window.searchPending = true")
        box = browser.find_element(By.ID, "q")
        box.clear()  # the page shows the last query in the box
        box.send_keys("crm/A/7" + Keys.ENTER)
        wait = WebDriverWait(browser, 60, ignored_exceptions=[WebDriverException])
        wait.until(lambda b: b.execute_script("return window.searchPending === undefined"))
        wait.until(ready.presence_of_element_located((By.ID, "q")))
        assert wanted in browser.page_source
        return time.monotonic() - started

    def unissued(value: int) -> httpx.Response:
        url = f"{api.url}/v1/numbers/{render_number(value)}"
        return httpx.get(url, headers=bearer(TOKENS.reader), timeout=180)

    try:
        sign_in(browser, api, TOKENS.searcher)
        normal = max(page_search() for _ in range(3))
        with ThreadPoolExecutor(max_workers=100) as pool:
            flood = [pool.submit(unissued, 90_000_000 + i) for i in range(100)]
            time.sleep(0.2)
            during = [page_search() for _ in range(5)]
            answers = [f.result() for f in flood]
        # Each miss says "valid, nobody holds it", or "ask again" while the one scan runs, or
        # "too many" past the token's scan budget.
        assert all(a.status_code in (200, 429, 503) for a in answers)
        assert any(a.status_code == 429 for a in answers)  # 100 at once: past the budget
        assert all(a.json()["owner"] is None for a in answers if a.status_code == 200)
        # The page answers within its normal latency (a generous bound: machines differ).
        assert max(during) < max(2.0, 5 * normal), (normal, during)
    finally:
        assert api.stop() == 0
