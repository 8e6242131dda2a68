"""The HTML report rendered by a real browser (headless Chromium, Debian's `chromium`):
every table present, no broken image, no request leaving the file, screenshots written.

Slow (it starts a browser); skipped where chromium is not installed. The screenshots go to
$ROBBENCH_SCREENSHOTS if set, else to pytest's temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from html_page import Page

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--host-resolver-rules=MAP * ~NOTFOUND"]
# Added to a copy of the page only: what the browser loaded, once everything has loaded.
PROBE = """<script>
function sortedByEps() {  // click the eps heading of the attacks table: rows by eps after
  var table = document.querySelector("#attacks table");
  var heads = Array.from(table.tHead.rows[0].cells).map(function (h) { return h.textContent; });
  var column = heads.indexOf("eps");
  table.tHead.rows[0].cells[column].click();
  var eps = Array.from(table.tBodies[0].rows).map(function (r) {
    return parseFloat(r.cells[column].textContent); }).filter(function (v) { return !isNaN(v); });
  return eps.length > 1 && eps.every(function (v, i) { return i === 0 || eps[i - 1] <= v; });
}
window.addEventListener("load", function () {
  var out = document.createElement("pre");
  out.id = "browser-probe";
  out.textContent = JSON.stringify({
    tables: document.querySelectorAll("table").length,
    rows: Array.from(document.querySelectorAll("table")).map(function (t) {
      return t.tBodies[0].rows.length; }),
    images: document.images.length,
    broken: Array.from(document.images).filter(function (i) {
      return !i.complete || i.naturalWidth === 0; }).length,
    requests: performance.getEntriesByType("resource").map(function (e) { return e.name; }),
    sortable: document.querySelectorAll("table.sorting th[tabindex]").length,
    sorts: document.querySelector("#attacks table") ? sortedByEps() : null});
  document.body.appendChild(out);
});
</script>"""

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


def chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def rendered(page: Path, tmp_path: Path) -> dict:
    """What Chromium loaded of ``page`` (a copy with the probe added)."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="browser-probe">([^<]*)</pre>', dom)
    assert found, "the page did not finish loading"
    return json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(page: Path, out: Path, width: int) -> Path:
    chromium(f"--screenshot={out}", f"--window-size={width},3000", "--hide-scrollbars",
             page.as_uri())
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    return out


def screenshot_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("ROBBENCH_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_the_browser_sees_a_check_fail_on_a_page_that_fetches(tmp_path):
    """The probe is not blind: a page with a remote image shows a request and a broken
    image."""
    page = tmp_path / "fetching.html"
    page.write_text("<!DOCTYPE html><html><body><table><tbody><tr><td>1</td></tr></tbody>"
                    "</table><img src='http://example.invalid/x.png' alt='x'></body></html>")
    seen = rendered(page, tmp_path)
    assert seen["requests"] == ["http://example.invalid/x.png"]
    assert seen["broken"] == 1 and seen["tables"] == 1


@pytest.mark.parametrize("dataset", ["digits", "mnist", "fashion-mnist"])
def test_committed_reports_render_whole_and_offline(dataset, tmp_path):
    page = ROOT / "results" / dataset / "report.html"
    tables = Page(page.read_text()).tables
    seen = rendered(page, tmp_path)
    assert seen["tables"] == tables and all(n > 0 for n in seen["rows"])
    assert seen["images"] == 2 and seen["broken"] == 0
    assert seen["requests"] == []
    assert seen["sortable"] > 0 and seen["sorts"]  # a click on "eps" sorts the attack rows
    out = screenshot_dir(tmp_path)
    for width in (1280, 390):  # a laptop and a phone
        shot = screenshot(page, out / f"report-{dataset}-{width}.png", width)
        print(f"screenshot: {shot}")


@pytest.mark.parametrize("board", ["digits", "mnist"])
def test_committed_leaderboard_pages_render_whole_and_offline(board, tmp_path):
    page = ROOT / "results" / "leaderboard" / f"{board}.html"
    seen = rendered(page, tmp_path)
    assert seen["tables"] == Page(page.read_text()).tables == 2  # the summary, every row
    assert all(n > 0 for n in seen["rows"]) and seen["broken"] == 0 and seen["requests"] == []
    shot = screenshot(page, screenshot_dir(tmp_path) / f"leaderboard-{board}-1280.png", 1280)
    print(f"screenshot: {shot}")
