"""The monitor page in headless Chromium (Debian's chromium + chromedriver, driven by
Selenium; no browser download): an operator starts a run from the page, watches rows
arrive, aborts it and sees the status; an observer cannot abort; the audit log
records who did what (issue 16)."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labserve import Serve, add_key, wait_for  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
                "`make test` does it)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")


def chromium_flags(profile: str) -> list[str]:
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"]


def make_browser(profile: str):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in chromium_flags(profile):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def browser():
    made = []

    def new():
        profile = tempfile.mkdtemp(prefix="labctl-chromium-")
        driver = make_browser(profile)
        driver.set_script_timeout(60)
        made.append((driver, profile))
        return driver

    yield new
    for driver, profile in made:
        try:
            driver.quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def test_operator_starts_watches_aborts_observer_cannot(tmp_path, browser):
    data = tmp_path / "data"
    op_key = add_key(data, "oscar", "operator")
    obs_key = add_key(data, "olga", "observer")
    s = Serve(tmp_path, "cryo-W", speedup="30", data_dir=data)
    try:
        op = browser()
        op.get(f"{s.url}/?key={op_key}")
        wait_for(lambda: "oscar (operator)" in text(op, "who"), 60, what="operator signed in")
        assert "key=" not in op.current_url  # the key leaves the address bar
        assert text(op, "station") == "cryo-W"
        # start a run from the page
        from selenium.webdriver.support.ui import Select

        Select(op.find_element("id", "what")).select_by_visible_text("vi")
        op.find_element("id", "sets").send_keys("current_step=2")
        op.find_element("id", "submit").click()
        wait_for(lambda: "queued item" in text(op, "message"), 30, what="queued")
        # rows arrive on the page and in its live plot
        wait_for(lambda: op.execute_script("return window.labctlRows") >= 5, 180, what="rows on the page")
        assert int(text(op, "rows")) >= 1
        assert text(op, "state") == "running" and "vi" in text(op, "step")
        assert text(op, "current") != "–" and text(op, "temperature") != "–"
        # the observer watches the same run, and cannot abort
        obs = browser()
        obs.get(f"{s.url}/?key={obs_key}")
        wait_for(lambda: "olga (observer)" in text(obs, "who"), 60, what="observer signed in")
        wait_for(lambda: obs.execute_script("return window.labctlRows") >= 1 or int(text(obs, "rows") or 0) >= 1, 120,
                 what="rows on the observer's page")
        assert not obs.find_element("id", "abort").is_enabled()
        assert not obs.find_element("id", "submit").is_enabled()
        status = obs.execute_async_script(
            "const done = arguments[0]; fetch('/api/run/abort', {method: 'POST', headers: headers()})"
            ".then(r => done(r.status)).catch(e => done(String(e)));")
        assert status == 403
        assert s.status()["state"] == "running"
        # the operator aborts from the page and sees the outcome
        op.find_element("id", "abort").click()
        wait_for(lambda: "aborted" in text(op, "message"), 120, what="the abort on the page")
        wait_for(lambda: text(op, "state") == "idle", 60, what="idle on the page")
        wait_for(lambda: "aborted" in op.find_element("id", "runs").text, 30, what="the run list")
        wait_for(lambda: "oscar" in op.find_element("id", "audit").text, 30, what="the audit table")
        final = s.status()["history"][-1]
        assert final["status"] == "aborted" and "oscar" in final["reason"]
        # the audit log: who did what, when
        audit = [json.loads(ln) for ln in (data / "service" / "audit.log").read_text().splitlines()]
        assert any(a["who"] == "oscar" and a["action"] == "POST /api/queue" and a["outcome"] == "ok" for a in audit)
        assert any(a["who"] == "oscar" and a["action"] == "POST /api/run/abort" and a["outcome"] == "ok" for a in audit)
        assert any(a["who"] == "olga" and a["action"] == "POST /api/run/abort" and a["outcome"] == "refused 403"
                   for a in audit)
        assert all(a["time"] for a in audit)
    finally:
        s.stop()


def test_page_without_a_key_when_keys_are_required(tmp_path, browser):
    data = tmp_path / "data"
    add_key(data, "oscar", "operator")
    s = Serve(tmp_path, "cryo-K", speedup="30", data_dir=data, args=["--host", "0.0.0.0"])
    try:
        page = browser()
        page.get(s.url.replace("0.0.0.0", "127.0.0.1") + "/")
        wait_for(lambda: "a key is needed" in text(page, "who"), 60, what="the page asking for a key")
        assert not page.find_element("id", "abort").is_enabled()
    finally:
        s.stop()


def test_alarms_are_shown_prominently(tmp_path, browser):
    data = tmp_path / "data"
    admin = add_key(data, "ada", "admin")
    s = Serve(tmp_path, "cryo-L", speedup="30", data_dir=data)
    try:
        page = browser()
        page.get(f"{s.url}/?key={admin}")
        wait_for(lambda: "ada (admin)" in text(page, "who"), 60, what="signed in")
        assert not page.find_element("id", "alarms").is_displayed()
        r = s.request("POST", "/api/sim/fault", admin, json={"role": "gaussmeter", "fault": "drop"})
        assert r.status_code == 200, r.text
        wait_for(lambda: page.find_element("id", "alarms").is_displayed(), 120, what="the alarm banner")
        banner = text(page, "alarms")
        assert "INSTRUMENT LOST" in banner and "field" in banner
        color = page.find_element("id", "alarms").value_of_css_property("background-color")
        assert color.replace(" ", "").startswith(("rgba(176,0,32", "rgb(176,0,32"))
        alarms = [a for a in s.status()["alarms"] if a["kind"] == "instrument lost"]
        assert len(alarms) == 1  # alarmed once, not at every poll
    finally:
        s.stop()
