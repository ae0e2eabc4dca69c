"""The account page (SPEC 8) in a real browser: Debian's Chromium, headless,
driven by selenium through Debian's chromedriver (scripts/interop.sh
installs both and exports their paths; selenium never downloads one).

The page talks to the API in cookie mode: the refresh token is an HttpOnly
cookie, the access token a JavaScript variable. These tests use it as a
person would (typing, clicking, reloading) while a second "device" uses
the API through requests, and check what the page says and what the
server and the browser hold. Every state is saved as a PNG in
AUTHGATE_ARTIFACTS (target/interop-artifacts/).

Chromium treats http://127.0.0.1 as a secure context and stores `Secure`
cookies from it, so the server runs with its default
`browser.cookie_secure = true` (test_the_refresh_cookie_... checks it).
"""

import os
import pathlib
import socket
import subprocess
import time
import uuid

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD

COOKIE = "authgate_refresh"
DESKTOP = (1280, 900)
PHONE = (375, 812)
OTHER_DEVICE = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"
WAIT_SECS = 15


# --- The browser -----------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts():
    default = pathlib.Path(__file__).resolve().parents[2] / "target" / "interop-artifacts"
    folder = pathlib.Path(os.environ.get("AUTHGATE_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("account-*.png"):
        old.unlink()
    print(f"\naccount page screenshots: {folder}")
    return folder


class Page:
    """The account page in one Chromium, and what a person sees of it."""

    def __init__(self, driver, base_url, artifacts, name):
        self.driver = driver
        self.base_url = base_url
        self.artifacts = artifacts
        self.name = name
        self.console = []

    # Navigation and waiting.

    def open(self):
        self.driver.get(f"{self.base_url}/account")
        self.wait_until_settled()

    def reload(self):
        self.driver.refresh()
        self.wait_until_settled()

    def wait(self, condition, message):
        try:
            # The page re-renders its list when an answer comes in: an
            # element read half-way through such a render is stale, and the
            # condition is simply asked again.
            return WebDriverWait(
                self.driver, WAIT_SECS, ignored_exceptions=(StaleElementReferenceException,)
            ).until(lambda _: condition(), message)
        except TimeoutException:
            self.screenshot("timeout")
            raise AssertionError(f"{message}; the page says {self.status()!r}") from None

    def wait_until_settled(self):
        """Until the page has decided between the form and the account."""
        self.wait(lambda: self.showing() is not None, "the page shows neither the form nor the account")

    def showing(self):
        if self.driver.find_element(By.ID, "signin").is_displayed():
            return "signin"
        if self.driver.find_element(By.ID, "account").is_displayed():
            return "account"
        return None

    def status(self):
        return self.driver.find_element(By.ID, "status").text

    def wait_for_words(self, words):
        self.wait(lambda: words in self.status(), f"the page never said {words!r}")

    # Acting as a person.

    def type_credentials(self, email, password):
        self.wait(lambda: self.driver.find_element(By.ID, "email").is_enabled(), "the form stays disabled")
        for field, value in (("email", email), ("password", password)):
            element = self.driver.find_element(By.ID, field)
            element.clear()
            element.send_keys(value)

    def click(self, element_id):
        self.driver.find_element(By.ID, element_id).click()

    def sessions(self):
        """The listed sessions: [{id, current, device, text}]."""
        items = self.driver.find_elements(By.CSS_SELECTOR, "#sessions > li")
        return [
            {
                "id": item.get_attribute("data-session-id"),
                "current": item.get_attribute("data-current") == "true",
                "device": item.find_element(By.CSS_SELECTOR, ".device strong").text,
                "text": item.text,
                "element": item,
            }
            for item in items
        ]

    def wait_for_sessions(self, count):
        # What the condition read: reading again could meet a re-render.
        seen = []

        def listed():
            seen[:] = self.sessions()
            return len(seen) == count

        self.wait(listed, f"the page never listed {count} session(s)")
        return list(seen)

    # What the browser holds.

    def cookie(self):
        """The refresh cookie as the browser stores it (through DevTools:
        WebDriver shows only the cookies of the page's own path, and this one
        is for /auth)."""
        found = self.driver.execute_cdp_cmd("Network.getCookies", {"urls": [f"{self.base_url}/auth/reissue"]})
        return next((c for c in found["cookies"] if c["name"] == COOKIE), None)

    def script(self, source):
        return self.driver.execute_script(source)

    def collect_console(self):
        self.console.extend(self.driver.get_log("browser"))
        return self.console

    def csp_violations(self):
        needles = ("Content Security Policy", "Content-Security-Policy", "Trusted Type", "TrustedHTML", "TrustedScript")
        return [entry for entry in self.collect_console() if any(n in entry["message"] for n in needles)]

    # Screenshots.

    def screenshot(self, state, size=DESKTOP, dark=False):
        """Saves the page at `size` (phone sizes emulate a phone), in the
        light or dark colour scheme, and prints its path."""
        width, height = size
        phone = width < 600
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 2 if phone else 1, "mobile": phone},
        )
        scheme = "dark" if dark else "light"
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )
        try:
            suffix = ("phone" if phone else "desktop") + ("-dark" if dark else "")
            path = self.artifacts / f"account-{state}-{suffix}.png"
            self.driver.save_screenshot(str(path))
            print(f"screenshot: {path}")
            return path
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("AUTHGATE_CHROMIUM", "/usr/bin/chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--lang=en-US",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("AUTHGATE_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


@pytest.fixture
def page_at(artifacts, request):
    """page_at(base_url) -> a Page in a fresh Chromium (its own profile)."""
    drivers = []

    def page_at(base_url):
        driver = chromium()
        drivers.append(driver)
        return Page(driver, base_url, artifacts, request.node.name.removeprefix("test_")[:40])

    yield page_at
    for driver in drivers:
        driver.quit()


@pytest.fixture
def page(page_at, base_url):
    return page_at(base_url)


# --- The API, as another device --------------------------------------------


def new_email():
    return f"browser-{uuid.uuid4().hex[:12]}@example.org"


def sign_up(base_url, email):
    response = requests.post(f"{base_url}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text


def log_in_elsewhere(base_url, email, user_agent=OTHER_DEVICE):
    response = requests.post(
        f"{base_url}/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": user_agent},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def sessions_of(base_url, pair):
    response = requests.get(
        f"{base_url}/auth/sessions", headers={"Authorization": f"Bearer {pair['access_token']}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def cookie_reissue(base_url, cookie_value):
    return requests.post(
        f"{base_url}/auth/reissue",
        headers={"Token-Transport": "cookie", "Cookie": f"{COOKIE}={cookie_value}"},
        timeout=10,
    )


def log_in_on_the_page(page, email, password=PASSWORD, sessions=1):
    page.type_credentials(email, password)
    page.click("login")
    page.wait(lambda: page.showing() == "account", "the login did not reach the account")
    page.wait_for_sessions(sessions)


# --- The scenario ----------------------------------------------------------


def test_sign_up_see_and_end_sessions_reload_and_log_out_everywhere(page, base_url):
    email = new_email()

    # The form, to someone not logged in: no error for that.
    page.open()
    assert page.showing() == "signin"
    assert page.status() == ""
    page.screenshot("01-login-form")
    page.screenshot("01-login-form", PHONE)

    # Sign up through the form: the page logs in with it too.
    page.type_credentials(email, PASSWORD)
    page.click("signup")
    page.wait_for_words("Your account is ready and you are logged in.")
    assert page.showing() == "account"
    assert page.driver.find_element(By.ID, "who-email").text == email
    [only] = page.wait_for_sessions(1)
    assert only["current"]

    # The refresh token is in an HttpOnly, Secure, SameSite=Strict cookie
    # for /auth that scripts cannot see.
    cookie = page.cookie()
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/auth"
    assert COOKIE not in page.script("return document.cookie")

    # A second device logs in through the API.
    other = log_in_elsewhere(base_url, email)
    page.click("refresh")
    listed = page.wait_for_sessions(2)
    [mine] = [s for s in listed if s["current"]]
    [theirs] = [s for s in listed if not s["current"]]
    assert "This browser" in mine["text"]
    assert "This browser" not in theirs["text"]
    assert theirs["device"] == "Firefox on Windows"
    assert theirs["id"] == other["session_id"]
    assert mine["device"].endswith("Chrome on Linux"), mine["device"]
    assert "127.0.0.1" in theirs["text"]
    for words in ("IP address", "Logged in", "Last used"):
        assert words in theirs["text"]
    # The server agrees on which session is the browser's.
    server_view = sessions_of(base_url, other)
    assert {s["id"] for s in server_view} == {mine["id"], theirs["id"]}
    page.screenshot("02-two-sessions")
    page.screenshot("02-two-sessions", PHONE)
    page.screenshot("02-two-sessions", PHONE, dark=True)

    # End the other device's session on the page.
    theirs["element"].find_element(By.CSS_SELECTOR, "button.end").click()
    page.wait_for_words("The session of Firefox on Windows (IP 127.0.0.1) has ended.")
    [left] = page.wait_for_sessions(1)
    assert left["id"] == mine["id"] and left["current"]
    refused = requests.post(f"{base_url}/auth/reissue", json={"refresh_token": other["refresh_token"]}, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"] == "session_revoked"
    page.screenshot("03-other-session-ended")

    # A reload keeps the person logged in, through a cookie-mode reissue.
    before_reload = page.cookie()["value"]
    page.reload()
    assert page.showing() == "account"
    page.wait_for_words("You are logged in.")
    [still] = page.wait_for_sessions(1)
    assert still["id"] == mine["id"] and still["current"]
    assert page.cookie()["value"] != before_reload, "the reload's reissue rotates the cookie"
    assert page.driver.find_element(By.ID, "who-email").text == email
    page.screenshot("04-after-reload")
    page.screenshot("04-after-reload", PHONE)

    # No token anywhere a script can read.
    assert page.script("return Object.entries(localStorage)") == []
    assert page.script("return Object.entries(sessionStorage)") == []
    assert page.script("return document.cookie") == ""
    assert page.script("return typeof access") == "undefined", "the token is not a global"

    # Log out everywhere: the form again, and the old cookie is dead.
    old_cookie = page.cookie()["value"]
    page.click("logout-all")
    page.wait_for_words("You are logged out everywhere")
    assert page.showing() == "signin"
    assert page.cookie() is None, "logout-all clears the cookie"
    dead = cookie_reissue(base_url, old_cookie)
    assert dead.status_code == 401, dead.text
    assert dead.json()["error"] == "session_revoked"
    page.screenshot("05-logged-out-everywhere")

    # A reload now shows the form, without an error.
    page.reload()
    assert page.showing() == "signin"
    assert page.status() == ""

    # A wrong password is said in words.
    page.type_credentials(email, "not the password")
    page.click("login")
    page.wait_for_words("Wrong email or password.")
    assert page.showing() == "signin"
    page.screenshot("06-wrong-password")
    page.screenshot("06-wrong-password", PHONE)
    page.screenshot("06-wrong-password", dark=True)

    # The right one logs in again, through the form.
    log_in_on_the_page(page, email)
    page.wait_for_words("You are logged in.")

    assert page.csp_violations() == []


def test_the_csp_check_of_the_console_sees_a_violation(page):
    """The console check above is not vacuous: an inline script that the
    page's CSP refuses shows up in the log that it reads."""
    page.open()
    assert page.csp_violations() == []

    page.script(
        "const image = document.createElement('img');"
        "image.src = 'https://example.org/pixel.png';"  # img-src 'self' refuses it
        "document.body.append(image);"
    )

    page.wait(lambda: page.csp_violations(), "no CSP violation reached the console")


# --- Sessions ended elsewhere -----------------------------------------------


def test_a_session_ended_elsewhere_sends_the_page_to_the_form_with_words(page, base_url):
    email = new_email()
    sign_up(base_url, email)
    other = log_in_elsewhere(base_url, email)
    page.open()
    log_in_on_the_page(page, email, sessions=2)
    browser_session = [s for s in page.sessions() if s["current"]][0]["id"]

    ended = requests.delete(
        f"{base_url}/auth/sessions/{browser_session}",
        headers={"Authorization": f"Bearer {other['access_token']}"},
        timeout=10,
    )
    assert ended.status_code == 204
    time.sleep(1.2)  # revocations reach access tokens within 1 s (SPEC 4.5)
    page.click("refresh")

    page.wait_for_words("this session was ended elsewhere")
    assert page.showing() == "signin"
    page.screenshot("ended-elsewhere")

    # A reload tries the cookie, which is dead: the words again, then the form.
    page.reload()
    page.wait_for_words("this session was ended elsewhere")
    assert page.showing() == "signin"
    assert page.cookie() is None, "a refused cookie-mode reissue clears the cookie"


def test_a_copied_refresh_cookie_used_elsewhere_is_said_to_be_reuse(page, base_url):
    email = new_email()
    sign_up(base_url, email)
    page.open()
    log_in_on_the_page(page, email)

    # Someone copies the cookie and uses it first: the browser's is spent.
    stolen = cookie_reissue(base_url, page.cookie()["value"])
    assert stolen.status_code == 200, stolen.text
    page.reload()

    page.wait_for_words("used twice")
    assert page.showing() == "signin"
    page.screenshot("token-reused")


# --- Devices ----------------------------------------------------------------


DEVICES = {
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1": "Safari on iPhone",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/140.0.0.0 Mobile Safari/537.36": "Chrome on Android",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/140.0.0.0 Safari/537.36 Edg/140.0.0.0": "Edge on macOS",
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0": "Firefox on Linux",
    "python-requests/2.34.2": "python-requests",
    "": "Unknown device",
}


def test_each_session_is_named_by_its_device(page, base_url):
    email = new_email()
    sign_up(base_url, email)
    others = {log_in_elsewhere(base_url, email, agent)["session_id"]: name for agent, name in DEVICES.items()}
    page.open()

    log_in_on_the_page(page, email, sessions=len(DEVICES) + 1)

    named = {s["id"]: s["device"] for s in page.sessions() if not s["current"]}
    assert named == others
    page.screenshot("many-devices")
    page.screenshot("many-devices", (PHONE[0], 2000))


# --- Failures said in words --------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def strict_server():
    """A second authgate on the same database that rate-limits an email
    after 2 failed logins (the shared server's limits stay untouched, and
    its per-IP count grows by 2 only), whose access tokens live 4 seconds,
    and that a test may stop."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AUTHGATE__SERVER__BIND": f"127.0.0.1:{port}",
        "AUTHGATE__SERVER__PUBLIC_URL": url,
        "AUTHGATE__RATELIMIT__LOGIN_FAILURES_PER_EMAIL": "2",
        "AUTHGATE__JWT__ACCESS_TTL_SECS": "4",
        "RUST_LOG": "warn",
    }
    process = subprocess.Popen(
        [os.environ["AUTHGATE_BIN"], "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the second server exited"
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the second server never became ready"
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def test_refusals_and_an_unreachable_server_are_said_in_words(page_at, strict_server):
    url, process = strict_server
    page = page_at(url)
    email = new_email()
    sign_up(url, email)
    page.open()

    # A new password under 8 characters: said before anything is sent.
    page.type_credentials(new_email(), "short")
    page.click("signup")
    page.wait_for_words("That password is too short: a new password needs at least 8 characters.")
    page.screenshot("password-too-short", PHONE)

    # An email that has an account already.
    page.type_credentials(email, PASSWORD)
    page.click("signup")
    page.wait_for_words("An account with this email already exists.")
    page.screenshot("email-taken")

    # A malformed email: the server's own words.
    page.type_credentials("no-at-sign", PASSWORD)
    page.click("login")
    page.wait_for_words("Email must have exactly one @")

    # Two wrong passwords, then the limit, with Retry-After in words.
    for _ in range(2):
        page.type_credentials(email, "not the password")
        page.click("login")
        page.wait_for_words("Wrong email or password.")
        page.script("document.getElementById('status').textContent = ''")
    page.type_credentials(email, PASSWORD)
    page.click("login")
    page.wait_for_words("Too many failed logins for this email or from this network. Try again in 15 minutes.")
    page.screenshot("rate-limited")
    page.screenshot("rate-limited", PHONE)

    # The server goes away.
    process.terminate()
    process.wait(timeout=10)
    page.type_credentials(email, PASSWORD)
    page.click("login")
    page.wait_for_words("The server cannot be reached.")
    assert page.showing() == "signin"
    page.screenshot("server-unreachable")


def test_the_page_renews_its_access_token_before_it_expires(page_at, strict_server):
    url, _ = strict_server
    page = page_at(url)
    email = new_email()
    sign_up(url, email)
    page.open()
    log_in_on_the_page(page, email)
    first = page.cookie()["value"]

    # Access tokens live 4 s here: the page reissues at 3.2 s by itself.
    page.wait(lambda: page.cookie()["value"] != first, "the page did not renew its tokens")
    second = page.cookie()["value"]
    page.wait(lambda: page.cookie()["value"] != second, "the page did not renew its tokens twice")

    # Past the first token's lifetime, the page still works without a 401.
    page.click("refresh")
    page.wait_for_words("The list is up to date.")
    assert page.showing() == "account"
    dead = cookie_reissue(url, first)
    assert dead.status_code == 401, "the first cookie was rotated, so it is spent"
