"""The chat playground of `litserve llm` in a real headless browser (Debian's Chromium through chromedriver),
against a real server with an API key: enter the key, chat with streamed tokens, stop a reply midway."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import httpx
import pytest

from tests.conftest import start_server

pytest.importorskip("transformers")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from litserve.llm.testing import build_tiny_model  # noqa: E402

pytestmark = pytest.mark.timeout(600)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
API_KEY = "playground-secret"
# A prompt whose greedy reply from this seeded model runs past 600 tokens (checked below): long enough to
# stop midway, whatever the speed of the machine.
LONG_PROMPT = "Tell me a story model."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-llama"), arch="llama", seed=5)
    running = start_server(
        tmp_path_factory.mktemp("llm"),
        "litserve.llm:LLMAPI",
        api_kwargs={"model_dir": model_dir},
        env={"LIT_SERVER_API_KEY": API_KEY},
        accelerator="cpu",
        timeout=300,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        missing = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):  # .ci/run installs them: in CI a missing browser is a failure, not a skip
            pytest.fail(missing)
        pytest.skip(missing)
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def assistant_text(browser) -> str:
    bubbles = browser.find_elements(By.CSS_SELECTOR, ".message.assistant .content")
    return bubbles[-1].text if bubbles else ""


def set_value(browser, element_id: str, value: str) -> None:
    element = browser.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(value)


def test_root_still_answers_plain_clients_and_every_api_route_needs_the_key(server):
    assert httpx.get(f"{server.url}/").status_code == 401  # the key guards / as before
    headers = {"Authorization": f"Bearer {API_KEY}"}
    root = httpx.get(f"{server.url}/", headers=headers)
    assert root.status_code == 200 and root.text == "litserve running"
    page = httpx.get(f"{server.url}/", headers={**headers, "Accept": "text/html,application/xhtml+xml"})
    assert page.headers["content-type"].startswith("text/html") and "<title>litserve playground</title>" in page.text
    for path, body in (("/tokenize", {"prompt": "hi"}), ("/detokenize", {"tokens": [1]})):
        assert httpx.post(f"{server.url}{path}", json=body).status_code == 401
        assert httpx.post(f"{server.url}{path}", json=body, headers=headers).status_code == 200
    # The page itself holds no data: it opens without the key (and fetches nothing from elsewhere).
    playground = httpx.get(f"{server.url}/playground")
    assert playground.status_code == 200 and "http://" not in playground.text and "https://" not in playground.text


def test_chat_in_the_browser_streams_shows_tokens_per_second_and_stops_midway(server, browser):
    long_reply = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"messages": [{"role": "user", "content": LONG_PROMPT}], "temperature": 0, "max_tokens": 600},
        timeout=300,
    ).json()
    assert long_reply["choices"][0]["finish_reason"] == "length"  # the premise of stopping it midway

    browser.get(f"{server.url}/playground")
    wait = WebDriverWait(browser, 120, poll_frequency=0.05)
    wait.until(lambda b: "API key" in b.find_element(By.ID, "status").text)  # the server asked for the key
    set_value(browser, "api-key", API_KEY)
    browser.find_element(By.ID, "system").click()  # leaving the field stores the key and reloads the model
    wait.until(lambda b: b.find_element(By.ID, "model").text.startswith("tiny-llama"))

    # A long one: text appears and grows while it streams; Stop ends it midway.
    set_value(browser, "temperature", "0")
    set_value(browser, "max_tokens", "600")
    set_value(browser, "message", LONG_PROMPT)
    browser.find_element(By.ID, "send").click()
    wait.until(lambda b: assistant_text(b))
    seen = assistant_text(browser)
    wait.until(lambda b: len(assistant_text(b)) > len(seen))  # more text came while the reply streams
    assert browser.find_element(By.ID, "stop").is_enabled()
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda b: "stopped" in b.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")[-1].text)
    stopped_text = assistant_text(browser)
    time.sleep(0.5)
    assert assistant_text(browser) == stopped_text  # nothing more arrives after Stop
    assert len(stopped_text) < len(long_reply["choices"][0]["message"]["content"])
    assert browser.find_element(By.ID, "send").is_enabled()

    # A short reply runs to its end: streamed text, then its token rate.
    set_value(browser, "max_tokens", "24")
    set_value(browser, "message", "Hello there")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda b: "finish:" in b.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")[-1].text)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".message.assistant")) == 2 and assistant_text(browser)
    stats = browser.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")[-1].text
    assert re.fullmatch(r"24 tokens · [0-9.]+ tokens/s · finish: length", stats), stats

    # The JSON-schema box constrains the next reply.
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 20}}, "required": ["answer"]}
    set_value(browser, "max_tokens", "80")
    set_value(browser, "schema", json.dumps(schema))
    set_value(browser, "message", "Answer in JSON")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")) == 3)
    wait.until(lambda b: "finish:" in b.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")[-1].text)
    answer = json.loads(assistant_text(browser))
    assert isinstance(answer["answer"], str)
