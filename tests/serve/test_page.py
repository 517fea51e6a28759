"""The search page in a real headless browser (Debian's chromium and chromedriver, driven by selenium).

The screenshot stays in the test's temp folder and is copied to $NEURANK_TEST_ARTIFACTS when that is set.
`make test` installs chromium where apt can; elsewhere the test is skipped, naming what is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.serve.conftest import Server

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no chromium / chromedriver on PATH: apt-get install chromium chromium-driver (make browser)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_the_page_shows_hits_with_stage_bars_and_explanations(server: Server, browser: webdriver.Chrome,
                                                              tmp_path: Path) -> None:
    browser.get(f"{server.url}/")
    assert browser.title == "neurank search"
    browser.find_element(By.ID, "query").send_keys("what do statins do")
    Select(browser.find_element(By.ID, "mode")).select_by_visible_text("hybrid")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 60).until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "hits in"))

    hits = browser.find_elements(By.CSS_SELECTOR, "#hits > li.hit")
    assert len(hits) == 6
    first = hits[0]
    assert first.get_attribute("data-id") == "d1"
    assert first.find_element(By.CLASS_NAME, "title").text == "Statins"
    assert "LDL cholesterol" in first.find_element(By.CLASS_NAME, "passage").text
    rows = first.find_elements(By.CSS_SELECTOR, "table.stages tr")
    assert [row.get_attribute("data-stage") for row in rows] == ["bm25", "sparse", "dense"]
    for row in rows:
        raw, normalized = (row.find_element(By.CSS_SELECTOR, f".bar.{kind} > span") for kind in ("raw", "normalized"))
        assert raw.get_attribute("style").startswith("width:")
        assert raw.size["width"] > 0 and 0 <= normalized.size["width"] <= normalized.find_element(
            By.XPATH, "..").size["width"]
    explain = {paragraph.get_attribute("data-explain"): paragraph.text
               for paragraph in first.find_elements(By.CSS_SELECTOR, "details.explain p")}
    assert set(explain) == {"bm25", "sparse"}  # no late-interaction stage in this index
    assert "statin" in explain["bm25"] and explain["sparse"] != "sparse: none"

    screenshot = tmp_path / "search-page.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    if artifacts := os.environ.get("NEURANK_TEST_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)


def test_the_page_shows_an_error_in_words(server: Server, browser: webdriver.Chrome) -> None:
    browser.get(f"{server.url}/")
    browser.find_element(By.ID, "query").send_keys("x" * 1001)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "422"))
    assert "above the limit of 1,000" in browser.find_element(By.ID, "status").text
    assert browser.find_elements(By.CSS_SELECTOR, "#hits > li") == []


def test_the_page_corrects_spelling_when_asked_and_says_what_it_searched(server: Server,
                                                                         browser: webdriver.Chrome) -> None:
    browser.get(f"{server.url}/")
    browser.find_element(By.ID, "query").send_keys("aspirn and bloood")
    browser.find_element(By.ID, "spelling").click()
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 60).until(expected_conditions.presence_of_element_located((By.ID, "searched")))
    assert browser.find_element(By.ID, "searched").text == "searched for “aspirin and blood”"
    assert browser.find_elements(By.CSS_SELECTOR, "#hits > li.hit")[0].get_attribute("data-id") == "d4"
