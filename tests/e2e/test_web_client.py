"""The web client at `/` (issue 13, items 5-7) in a real browser: Playwright for Python driving
Debian's headless Chromium (`make test` installs the `chromium` package when it is missing;
Playwright's own browsers are never downloaded). Two browser contexts are two users against
a real server: sign up both, one follows the other (a live notification badge), a post with
an image appears live in the follower's feed, chat both ways with typing indicators and read
receipts, and a 1:1 video call whose RTCPeerConnections reach `connected` (fake camera and
microphone). Screenshots of each step land in .artifacts/web-client/ (printed).

Every wait is a Playwright auto-waiting expectation; the whole run is bounded by RUN_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.support.images import png
from tests.support.server import HubbubProcess

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[test]')")
async_playwright = playwright_api.async_playwright
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts" / "web-client"
RUN_SECONDS = 90
EXPECT_MS = 20_000
CALL_MS = 30_000
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def find_chromium() -> str | None:
    """CHROMIUM (a path), else Debian's chromium on PATH or at /usr/bin/chromium."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


async def test_web_client_is_served_with_csp_and_cache_headers(
        http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self';" in csp
        assert response.headers["Cache-Control"] == "no-cache"
        page = await response.text()
    assets = re.findall(r'(?:src|href)="(/app/[^"]+)"', page)
    assert "/app/main.js" in assets and any("socket.io.min.js" in a for a in assets)
    for asset in assets:
        async with http.get(asset) as response:
            assert response.status == 200, asset
            expected = "text/css" if asset.endswith(".css") else "text/javascript"
            assert response.content_type == expected, asset
            vendored = asset.startswith("/app/vendor/")
            assert ("immutable" in response.headers["Cache-Control"]) == vendored, asset
            etag = response.headers["ETag"]
        async with http.get(asset, headers={"If-None-Match": etag}) as response:
            assert response.status == 304
    async with http.get("/app/vendor/socket.io-client-4.8.4/LICENSE") as response:
        assert response.status == 200 and "MIT" in await response.text()
    async with http.get("/app/no-such-file.js") as response:
        assert response.status == 404
    async with http.get("/openapi.json") as response:
        paths = (await response.json())["paths"]
    assert "/" in paths and not any(p.startswith("/app") for p in paths)


async def test_two_users_in_two_browsers(hubbub: HubbubProcess) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium: `make test` installs Debian's chromium package (as root); "
                    "or set CHROMIUM to a Chromium binary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nweb client screenshots: {ARTIFACTS}")
    expect.set_options(timeout=EXPECT_MS)
    async with asyncio.timeout(RUN_SECONDS):
        await _scenario(chromium, hubbub.base_url)


async def _scenario(chromium: str, base_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice_{suffix}", f"bob_{suffix}"
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True,
                                           args=FAKE_MEDIA)
        try:
            # Alice on a laptop-sized window, Bob on a phone-sized one.
            pa = await _page(browser, base_url, {"width": 1100, "height": 850}, problems, "alice")
            pb = await _page(browser, base_url, {"width": 390, "height": 844}, problems, "bob")

            # 1. Sign up both.
            for page, name in ((pa, alice), (pb, bob)):
                response = await page.goto("/")
                assert response is not None and "default-src 'none'" in (
                    response.headers.get("content-security-policy") or "")
                await _signup(page, name)
            await _shot(pa, "1-alice-signed-up")

            # 2. Bob finds Alice and follows her; Alice's notification badge goes up live.
            await _open_profile(pb, alice)
            await pb.get_by_role("button", name="Follow", exact=True).click()
            await expect(pb.get_by_role("button", name="Unfollow", exact=True)).to_be_visible()
            badge = pa.locator("#notif-badge")
            await expect(badge).to_be_visible()
            await expect(badge).to_have_attribute("data-count", re.compile(r"^[1-9]"))
            await _shot(pb, "2-bob-follows-alice")
            await _shot(pa, "2-alice-notification-badge")

            # 3. Bob watches his feed; Alice posts with an image; it arrives live (feed:new).
            await pb.get_by_role("link", name="Feed").click()
            await expect(pb.locator("#feed-list")).to_have_attribute("aria-busy", "false")
            text = f"Hello from the browser {suffix}"
            await pa.get_by_role("link", name="Feed").click()
            await expect(pa.locator("#feed-list")).to_have_attribute("aria-busy", "false")
            await pa.locator("form.composer textarea[name=text]").fill(text)
            await pa.locator("form.composer input[type=file]").set_input_files(
                files=[{"name": "dot.png", "mimeType": "image/png", "buffer": png(64, 48)}])
            await expect(pa.locator(".uploads li[data-uploaded=true]")).to_have_count(1)
            await expect(pa.locator(".uploads progress")).to_have_attribute("value", "100")
            await pa.get_by_role("button", name="Post", exact=True).click()
            await expect(pa.locator("article.post", has_text=text)).to_be_visible()
            live_post = pb.locator("article.post", has_text=text)
            await expect(live_post).to_be_visible()
            image = live_post.locator("img")
            await expect(image).to_be_visible()
            await image.evaluate("img => img.decode()")  # it loads (same origin, CSP allows)
            await _shot(pb, "3-bob-sees-post-live")

            # 4. Chat both ways: typing indicators, messages, read receipts.
            await pb.get_by_role("link", name="Feed").click()
            await _open_profile(pb, alice)
            await pb.get_by_role("button", name="Message", exact=True).click()
            await expect(pb).to_have_url(re.compile(r"#/chat/[0-9a-f-]+$"))
            await _open_profile(pa, bob)
            await pa.get_by_role("button", name="Message", exact=True).click()
            await expect(pa).to_have_url(pb.url)
            await expect(pa.locator(f".presence li:has-text('@{bob}')")).to_have_attribute(
                "data-status", "online")
            for writer, reader, words in ((pb, pa, f"hi {alice}"), (pa, pb, f"hello {bob}")):
                who = bob if writer is pb else alice
                box = writer.get_by_placeholder("Write a message")
                await box.press_sequentially(words[:4])
                await expect(reader.locator("#typing")).to_have_text(f"@{who} is typing…")
                await box.press_sequentially(words[4:])
                await box.press("Enter")
                await expect(reader.locator(".message", has_text=words)).to_be_visible()
                await expect(reader.locator("#typing")).to_have_text("")
                mine = writer.locator(".message.mine", has_text=words).locator(".receipt")
                await expect(mine).to_have_text("Seen")
                await _shot(writer, f"4-{who}-message-seen")
            await _shot(pa, "4-alice-chat")

            # 5. A 1:1 video call from the room: Alice calls, Bob accepts, both connect.
            await pa.get_by_role("button", name="Video call").click()
            await expect(pb.locator("#call")).to_have_attribute("data-call-state", "ringing")
            await _shot(pb, "5-bob-incoming-call")
            await pb.get_by_role("button", name="Accept").click()
            for page in (pa, pb):
                await expect(page.locator("#call")).to_have_attribute(
                    "data-call-state", "connected", timeout=CALL_MS)
                await expect(page.locator("#call .tile")).to_have_attribute(
                    "data-peer-state", "connected")
            await _shot(pa, "5-alice-call-connected")
            await _shot(pb, "5-bob-call-connected")
            await pa.get_by_role("button", name="Hang up").click()
            await expect(pb.locator("#call")).to_be_hidden()
            await expect(pa.locator("#call")).to_be_hidden()
        finally:
            await browser.close()
    assert not problems, "browser errors:\n" + "\n".join(problems)


async def _page(browser, base_url: str, viewport: dict, problems: list[str], who: str):
    context = await browser.new_context(base_url=base_url, viewport=viewport,
                                        permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"{who}: {error}"))
    page.on("console", lambda message: problems.append(f"{who}: console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text else None)
    return page


async def _signup(page, name: str) -> None:
    form = page.get_by_role("form", name="Sign up")
    await form.get_by_label("Username").fill(name)
    await form.get_by_label("Email").fill(f"{name}@example.test")
    await form.get_by_label("Password").fill("correct horse battery")
    await form.get_by_role("button", name="Sign up").click()
    await expect(page.locator("#conn")).to_have_text("online")
    await expect(page.get_by_role("heading", name="Home")).to_be_visible()


async def _open_profile(page, username: str) -> None:
    await page.locator("#find-input").fill(username)
    await page.locator("#find-input").press("Enter")
    await expect(page.get_by_role("heading", level=2)).to_have_text(username)


async def _shot(page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
