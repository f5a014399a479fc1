"""The dashboard (`GET /` from a browser), in a real headless Chromium against real waitress.

The browser tests need Debian's chromium and chromium-driver (`.ci/run` installs them)
and selenium; without them they skip. The screenshot goes to SCREENSHOT, for a person.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from memflask import create_app
from tests.harness.servers import LiveServer

# A browser's Accept for a page it navigates to; curl sends */*.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SCREENSHOT = Path(tempfile.gettempdir()) / "memflask-dashboard.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_SECONDS = 20  # the page polls every 2 s; a loaded machine may take a few rounds


def make_app(**settings):
    return create_app({"TESTING": True, "APP_ENV": "production", **settings})


# --- without a browser: what `/` answers to whom -------------------------------------


def test_a_browser_gets_the_page_with_a_strict_content_security_policy():
    response = make_app().test_client().get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<title>memflask</title>" in response.data
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "Accept" in response.headers["Vary"]


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/plain"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE"])
def test_other_clients_get_the_404_they_got_before_the_dashboard(method, accept):
    headers = {} if accept is None else {"Accept": accept}
    response = make_app().test_client().open("/", method=method, headers=headers)
    assert response.status_code == 404
    if method != "HEAD":
        assert response.get_json()["error"] == "not_found"


def test_with_a_token_other_clients_still_get_401_for_the_root():
    client = make_app(TOKEN="s3cret").test_client()
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 404


def test_the_page_and_its_files_need_no_token_but_the_data_does():
    client = make_app(TOKEN="s3cret").test_client()
    assert client.get("/", headers={"Accept": BROWSER_ACCEPT}).status_code == 200
    for name in ("dashboard.js", "dashboard.css"):
        with client.get(f"/dashboard/{name}") as response:  # a file: closed after reading
            assert response.status_code == 200
    assert client.get("/dashboard/about").status_code == 401
    assert client.get("/stats").status_code == 401
    about = client.get("/dashboard/about", headers={"Authorization": "Bearer s3cret"})
    assert about.get_json()["store"] == "memory"


def test_the_page_keeps_the_host_allowlist():
    response = (
        make_app()
        .test_client()
        .get("/", headers={"Accept": BROWSER_ACCEPT, "Host": "evil.example"})
    )
    assert response.status_code == 403


def test_about_names_the_backend_never_its_address():
    app = make_app()
    app.config["STORE_URL"] = "redis://:password@10.0.0.1:6379/0"  # what the page would see
    body = app.test_client().get("/dashboard/about").get_data(as_text=True)
    assert '"store":"redis"' in body and "password" not in body and "10.0.0.1" not in body


def test_the_page_fetches_nothing_from_another_site():
    static = Path(__file__).parents[2] / "memflask" / "web" / "dashboard" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path
        assert "https://" not in text, path


# --- in a real headless Chromium -------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No sandbox (CI runs as root), and no background connections: the network is closed.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,1100",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.2).until(condition, message)


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def points_of(driver, verb: str) -> int:
    """How many samples the chart's line for `verb` has (0: no line)."""
    lines = driver.find_elements("css selector", f"#chart polyline[data-verb='{verb}']")
    return len(lines[0].get_attribute("points").split()) if lines else 0


def test_the_dashboard_shows_live_figures_and_a_chart(browser):
    SCREENSHOT.unlink(missing_ok=True)  # a file left by an earlier run proves nothing
    app = make_app(SIZE=1000)
    with LiveServer(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        browser.get(base + "/")
        wait_for(browser, lambda d: "live" in text_of(d, "status"), "the page never went live")
        assert text_of(browser, "key-count") == "0"
        # Writes in three rounds, each seen by a poll of its own: the chart gets a line.
        for round_ in range(3):
            for n in range(4 * round_, 4 * round_ + 4):
                server.request("GET", f"/set?key=user:{n}&value=v{n}")
            wait_for(
                browser,
                lambda d, keys=4 * round_ + 4: text_of(d, "key-count") == str(keys),
                "the key count never updated",
            )
        server.request("GET", "/get?key=user:1")
        server.request("GET", "/get?key=missing")
        wait_for(browser, lambda d: points_of(d, "get") >= 1, "no /get in the chart")
        assert points_of(browser, "set") >= 3
        assert text_of(browser, "key-cap") == "of 1,000"
        assert text_of(browser, "hit-ratio") == "50.0 %"
        assert text_of(browser, "hits-misses") == "1 hit, 1 miss"
        assert text_of(browser, "store") == "memory store"
        legend = [
            item.get_attribute("data-verb")
            for item in browser.find_elements("css selector", "#legend li")
        ]
        assert "set" in legend and "get" in legend
        server.request("GET", "/get?key=cold&lease=30")  # a miss, and a lease taken
        wait_for(browser, lambda d: text_of(d, "leases") == "1", "the leases never updated")
        assert text_of(browser, "lease-use") == "0 filled, 0 stale answers"

        # The key browser, by prefix: names only, and it reads no value.
        server.request("GET", "/set?key=other&value=x")
        browser.find_element("id", "prefix").send_keys("user:")
        browser.find_element("id", "list-keys").click()
        wait_for(
            browser,
            lambda d: len(d.find_elements("css selector", "#key-list li")) == 12,
            "keys not listed",
        )
        listed = {item.text for item in browser.find_elements("css selector", "#key-list li")}
        assert listed == {f"user:{n}" for n in range(12)}
        browser.save_screenshot(str(SCREENSHOT))
        print(f"dashboard screenshot: {SCREENSHOT}")
        stats = app.extensions["memflask"].store.stats()
        # The page's reads changed nothing: one hit, the miss and the lease read's miss.
        assert (stats["hits"], stats["misses"]) == (1, 2)
    assert SCREENSHOT.stat().st_size > 10_000


def test_with_a_token_the_page_asks_once_and_keeps_it_out_of_urls(browser):
    token = "abc=def+/token"
    with LiveServer(make_app(TOKEN=token)) as server:
        base = f"http://127.0.0.1:{server.port}"
        browser.get(base + "/")
        form = wait_for(
            browser,
            lambda d: (
                d.find_element("id", "token-form").is_displayed()
                and d.find_element("id", "token-form")
            ),
            "no token form",
        )
        browser.find_element("id", "token").send_keys("wrong")
        form.find_element("css selector", "button").click()
        wait_for(
            browser,
            lambda d: "refused" in text_of(d, "token-message"),
            "a wrong token was not refused",
        )
        browser.find_element("id", "token").send_keys(token)
        form.find_element("css selector", "button").click()
        wait_for(
            browser,
            lambda d: "live" in text_of(d, "status"),
            "the page never went live with the token",
        )
        assert browser.execute_script("return sessionStorage.getItem('memflask.token')") == token
        assert token not in browser.current_url
        urls = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert any("/stats" in url for url in urls)
        assert not any("abc" in url for url in urls)
        # A reload in the same tab does not ask again.
        browser.refresh()
        wait_for(
            browser, lambda d: "live" in text_of(d, "status"), "the token was not kept for the tab"
        )
        assert not browser.find_element("id", "token-form").is_displayed()
