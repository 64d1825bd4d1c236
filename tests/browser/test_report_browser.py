"""The study report as a reader opens it: a real headless browser, and its figure files.

The page is opened over file:// in Debian's Chromium (driven by Playwright; no browser is
downloaded). A report that works offline loads with no console or page errors and requests
nothing but itself and data: URIs; its images decode, its inline SVGs take up space, its
contents links land on their sections, and it renders for print. The figure files beside it
(reports/<study>/figures/<name>.svg and .png) are checked without a browser.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from report_checks import (
    documented_png_size,
    png_problems,
    report_files,
    require_figures,
    svg_problems,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Schemes a self-contained page may load: itself and inline data.
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


def _report_dir(workflow_run: Path) -> Path:
    return workflow_run / "reports" / "small"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system, or a skip saying how to install it."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip(
            "Chromium is not installed at /usr/bin/chromium: run `bash tools/system-packages.sh` "
            "as root (`make env` runs it) to install Debian's chromium"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def opened(browser, workflow_run: Path):
    """The report open in a fresh page, with everything the page reported while loading."""
    html = _report_dir(workflow_run) / "report.html"
    assert html.is_file(), f"{html} was not written"
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    events: dict[str, list[str]] = {"console": [], "page": [], "failed": [], "requests": []}
    page.on(
        "console",
        lambda m: events["console"].append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: events["page"].append(str(e)))
    page.on("requestfailed", lambda r: events["failed"].append(f"{r.url[:80]} ({r.failure})"))
    page.on("request", lambda r: events["requests"].append(r.url))
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")
    yield page, events
    context.close()


def test_report_loads_offline_without_errors(opened):
    page, events = opened
    assert events["page"] == [], f"script errors on the page: {events['page']}"
    assert events["console"] == [], f"console errors: {events['console']}"
    assert events["failed"] == [], f"requests that failed: {events['failed']}"
    remote = [u[:80] for u in events["requests"] if not u.startswith(LOCAL_SCHEMES)]
    assert remote == [], f"the report requested URLs outside the file: {remote}"
    assert page.title(), "the report has no <title>"


def test_scripts_styles_images_and_fonts_are_inline(workflow_run: Path):
    """Read from the file itself: nothing the page draws with is fetched from elsewhere."""
    html = (_report_dir(workflow_run) / "report.html").read_text(encoding="utf-8")
    loaded = re.findall(
        r"<(?:script|img|source|iframe|embed)\b[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html
    )
    loaded += re.findall(r"<link\b[^>]*\bhref\s*=\s*[\"']?([^\"' >]+)", html)
    loaded += re.findall(r"url\(\s*[\"']?([^\"')]+)", html)
    loaded += re.findall(r"@import\s+[\"']([^\"']+)", html)
    outside = sorted({u[:60] for u in loaded if not u.startswith(("data:", "#"))})
    assert outside == [], f"the report loads these from outside the file: {outside}"


def test_every_image_decodes_and_every_inline_svg_has_a_size(opened):
    page, _ = opened
    images = page.evaluate(
        """() => Array.from(document.images).map((img, i) => ({
            index: i, complete: img.complete, width: img.naturalWidth,
            height: img.naturalHeight, src: img.src.slice(0, 40)}))"""
    )
    broken = [i for i in images if not i["complete"] or i["width"] == 0 or i["height"] == 0]
    assert broken == [], f"images that did not decode: {broken}"
    svgs = page.evaluate(
        """() => Array.from(document.querySelectorAll('svg'))
            .filter(svg => !svg.parentElement.closest('svg'))
            .map((svg, i) => { const b = svg.getBoundingClientRect();
                               return {index: i, width: b.width, height: b.height}; })"""
    )
    empty = [s for s in svgs if s["width"] <= 0 or s["height"] <= 0]
    assert empty == [], f"inline SVGs with an empty bounding box: {empty}"
    assert images or svgs, "the report shows no figure at all"


def test_contents_links_point_at_sections_and_scroll_there(opened):
    page, _ = opened
    hrefs = page.evaluate(
        """() => Array.from(document.querySelectorAll('nav a[href^="#"]'))
            .map(a => a.getAttribute('href'))"""
    )
    assert len(hrefs) >= 5, f"the table of contents has {len(hrefs)} links"
    missing = [h for h in hrefs if page.evaluate("id => !document.getElementById(id)", h[1:])]
    assert missing == [], f"contents links without a target: {missing}"
    for href in hrefs:
        page.evaluate("() => window.scrollTo(0, 0)")
        page.click(f'nav a[href="{href}"]')
        # The target is at the top of the viewport (allowing for a scroll margin), or the page
        # is scrolled to its end with the target in view.
        try:
            page.wait_for_function(
                """id => { const top = document.getElementById(id).getBoundingClientRect().top;
                           const end = window.innerHeight + window.scrollY
                                       >= document.documentElement.scrollHeight - 2;
                           return (top >= -2 && top <= window.innerHeight / 4)
                                  || (end && top >= 0 && top < window.innerHeight); }""",
                arg=href[1:],
                timeout=5000,
            )
        except PlaywrightTimeout:
            pytest.fail(f"clicking the contents link {href} did not scroll to its section")
        assert page.evaluate("() => location.hash") == href


def test_sections_have_ids_and_headings(opened):
    page, _ = opened
    sections = page.evaluate(
        """() => Array.from(document.querySelectorAll('section')).map(s => ({
            id: s.id, heading: !!s.querySelector('h2, h3')}))"""
    )
    assert sections, "the report has no <section> elements"
    assert [s for s in sections if not s["id"]] == [], "a section has no id"
    assert [s["id"] for s in sections if not s["heading"]] == []


def test_print_rendering_has_no_errors(opened):
    page, events = opened
    before = {kind: len(events[kind]) for kind in ("page", "console", "failed")}
    page.emulate_media(media="print")
    try:
        pdf = page.pdf(format="A4", print_background=True)
        height = page.evaluate("() => document.documentElement.scrollHeight")
    finally:
        page.emulate_media(media="screen")
    assert pdf.startswith(b"%PDF"), "printing did not produce a PDF"
    assert height > 0
    after = [message for kind, n in before.items() for message in events[kind][n:]]
    assert after == [], f"errors when printing: {after}"


# -- the figure files, without a browser ----------------------------------------------------


def test_every_png_figure_opens_at_the_expected_size_and_is_not_blank(workflow_run: Path):
    files = report_files(_report_dir(workflow_run))
    _, pngs = require_figures(files)
    size = documented_png_size()
    problems = [p for png in pngs for p in png_problems(png, size)]
    assert problems == [], problems


def test_every_svg_figure_is_an_svg_document(workflow_run: Path):
    files = report_files(_report_dir(workflow_run))
    svgs, _ = require_figures(files)
    problems = [p for svg in svgs for p in svg_problems(svg)]
    assert problems == [], problems


# -- accessibility and print ----------------------------------------------------------------

#: A4 less the report's print margins (12 mm each side), in CSS pixels (96 per inch).
A4_CONTENT_WIDTH_PX = round((210 - 2 * 12) / 25.4 * 96)


def test_every_figure_has_alt_text_and_every_table_header_cells_with_scope(opened):
    page, _ = opened
    images = page.evaluate(
        """() => Array.from(document.images).map(img => ({
            src: img.src.slice(0, 30), alt: (img.getAttribute('alt') || '').trim()}))"""
    )
    assert images, "the report shows no image"
    assert [i["src"] for i in images if not i["alt"]] == [], "images without alt text"
    tables = page.evaluate(
        """() => Array.from(document.querySelectorAll('table')).map(t => ({
            id: t.id, caption: !!t.querySelector('caption'),
            headers: t.querySelectorAll('thead th').length,
            unscoped: Array.from(t.querySelectorAll('th'))
                .filter(th => !['col', 'colgroup', 'row', 'rowgroup']
                              .includes(th.getAttribute('scope'))).length,
            data_in_head: t.querySelectorAll('thead td').length}))"""
    )
    assert tables, "the report shows no table"
    assert [t["id"] for t in tables if not t["caption"]] == [], "tables without a caption"
    assert [t["id"] for t in tables if t["headers"] == 0] == [], "tables without header cells"
    assert [t["id"] for t in tables if t["unscoped"]] == [], "header cells without a scope"
    assert [t["id"] for t in tables if t["data_in_head"]] == [], "data cells in a table header"


def test_print_starts_each_section_on_a_new_page_within_the_page_width(opened):
    page, _ = opened
    page.set_viewport_size({"width": A4_CONTENT_WIDTH_PX, "height": 1000})
    page.emulate_media(media="print")
    try:
        breaks = page.evaluate(
            """() => Array.from(document.querySelectorAll('section')).map(s => ({
                id: s.id, before: getComputedStyle(s).breakBefore}))"""
        )
        wide = page.evaluate(
            """limit => Array.from(document.querySelectorAll('table, figure img, pre'))
                .map(e => ({what: e.id || e.tagName, right: e.getBoundingClientRect().right}))
                .filter(e => e.right > limit + 1)""",
            A4_CONTENT_WIDTH_PX,
        )
        pdf = page.pdf(format="A4", print_background=True)
    finally:
        page.emulate_media(media="screen")
        page.set_viewport_size({"width": 1200, "height": 900})
    assert breaks and [s["id"] for s in breaks if s["before"] != "page"] == []
    assert wide == [], f"wider than an A4 page when printed: {wide}"
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    assert pages > len(breaks), f"{len(breaks)} sections printed on {pages} pages"
