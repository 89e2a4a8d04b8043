"""Check the rendered book in a real browser (Debian's Chromium driven by Playwright).

The book is served from ``_build/html`` on a loopback HTTP server; every page is opened and checked
for images that did not load, console errors, uncaught exceptions, failed requests, internal links
that lead nowhere, text a reader should never see (a path of the build machine, a traceback, a
library warning, a table truncated with "…"), a title another page has too, volume viewers
that do not draw (their canvas pixels are read after load), images that are not captioned figures
with alt text that describes them, and pages that scroll sideways on a phone (390 px). A full-page
screenshot of each page is saved at 1280 px and at 390 px. No browser is ever downloaded: the
system Chromium (``/usr/bin/chromium``) is used through Playwright's ``executable_path``.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

from tausynth.errors import TausynthError

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Flags that keep a headless Chromium from calling home on a machine without network.
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
SKIP_PAGES = ("genindex.html", "search.html")
#: Text a reader should never see on a page, with what it means.
FORBIDDEN_TEXT: tuple[tuple[str, str], ...] = (
    (r"(?<![\w.])/(?:home|root|tmp|work|Users|var/folders)/[\w.-]+", "a path of the build machine"),
    (r"[A-Z]:\\(?:Users|Windows)\\", "a path of the build machine"),
    (r"Traceback \(most recent call last\)", "a traceback"),
    (r"\w*Warning: ", "a library warning"),
)


def find_chromium() -> str | None:
    """Path of a system Chromium, or None."""
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    found = shutil.which("chromium")
    return found


@dataclass
class PageReport:
    """What the browser saw on one page."""

    page: str
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    dead_links: list[str] = field(default_factory=list)
    forbidden_text: list[str] = field(default_factory=list)
    title: str = ""
    viewers: int = 0
    screenshot: Path | None = None
    phone_screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        """One line per problem, naming the page."""
        out = [f"{self.page}: image did not load: {s}" for s in self.broken_images]
        out += [f"{self.page}: console error: {s}" for s in self.console_errors]
        out += [f"{self.page}: request failed: {s}" for s in self.failed_requests]
        out += [f"{self.page}: internal link leads nowhere: {s}" for s in self.dead_links]
        out += [f"{self.page}: {s}" for s in self.forbidden_text]
        return out


def forbidden_text(text: str, truncated_cells: int = 0) -> list[str]:
    """What a reader should not see in a page's text (:data:`FORBIDDEN_TEXT`), one line each.

    Examples
    --------
    >>> forbidden_text("saved to /home/ada/runs/x.pt; UserWarning: slow")
    ["a path of the build machine: '/home/ada'", "a library warning: 'UserWarning: '"]
    >>> forbidden_text("fine", truncated_cells=2)
    ['a table truncated with "…" (2 cell(s))']
    """
    out = []
    for pattern, what in FORBIDDEN_TEXT:
        found = re.search(pattern, text)
        if found:
            out.append(f"{what}: {found.group(0)!r}")
    if truncated_cells:
        out.append(f'a table truncated with "…" ({truncated_cells} cell(s))')
    return out


#: True once the frame's canvas shows more than a handful of colors (a drawn slice, not a blank box).
_CANVAS_DRAWN = """() => {
  const canvas = document.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const colors = new Set();
  for (let i = 0; i < data.length; i += 4 * 31) colors.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return colors.size > 8;
}"""


#: Every image of the page's content, with its alt text and the caption of the figure it is in ("" if none).
_CONTENT_IMAGES = """els => els.map(img => {
  const figure = img.closest('figure');
  const caption = figure && figure.querySelector('figcaption');
  return [img.getAttribute('src') || '', (img.getAttribute('alt') || '').trim(), caption ? caption.innerText.trim() : ''];
})"""
#: Alt text that names a file instead of describing the image.
_FILE_LIKE_ALT = re.compile(r"(\.(png|jpe?g|svg|gif|webp)$)|(^[0-9a-f]{16,}$)", re.IGNORECASE)


def figure_problems(images: list[list[str]]) -> list[str]:
    """One line per content image without a figure caption or without alt text that describes it.

    ``images`` is ``[src, alt, caption]`` per image.

    Examples
    --------
    >>> figure_problems([["a.png", "Bar chart of stages", "Fig. 1 Stages."], ["b.png", "b.png", ""]])
    ["image without a figure caption: 'b.png'", "image whose alt text is a file name: 'b.png'"]
    """
    out = []
    for src, alt, caption in images:
        name = src.rsplit("/", 1)[-1]
        if not caption:
            out.append(f"image without a figure caption: {name!r}")
        if not alt:
            out.append(f"image without alt text: {name!r}")
        elif _FILE_LIKE_ALT.search(alt) or alt == name:
            out.append(f"image whose alt text is a file name: {name!r}")
    return out


#: Wider than the viewport: the page's own width, and the first element that sticks out (tag.class) and
#: is not clipped by a scrolling box of its own (a wide table or equation inside one is fine).
_OVERFLOW = """() => {
  const width = window.innerWidth;
  if (document.documentElement.scrollWidth <= width + 1) return null;
  const clipped = el => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(up).overflowX)) {
        return up.getBoundingClientRect().right <= width + 1;
      }
    }
    return false;
  };
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 1 && box.width > 0 && !clipped(el)) {
      const cls = (el.className && typeof el.className === 'string') ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
      return [document.documentElement.scrollWidth, el.tagName.toLowerCase() + cls];
    }
  }
  return [document.documentElement.scrollWidth, 'no single element'];
}"""


def _blank_viewers(page: object) -> tuple[int, int]:
    """How many volume viewers (``iframe.tausynth-viewer``) the page has, and how many drew nothing."""
    from playwright.sync_api import Error as PlaywrightError

    handles = page.query_selector_all("iframe.tausynth-viewer")  # type: ignore[attr-defined]
    blank = 0
    for handle in handles:
        frame = handle.content_frame()
        try:
            if frame is None:
                raise PlaywrightError("no frame")
            frame.wait_for_function(_CANVAS_DRAWN, timeout=15000)
        except PlaywrightError:
            blank += 1
    return len(handles), blank


def _duplicate_titles(reports: list[PageReport]) -> None:
    """Add a problem to every page whose title another page has too."""
    by_title: dict[str, list[PageReport]] = {}
    for report in reports:
        if report.title:
            by_title.setdefault(report.title, []).append(report)
    for title, same in by_title.items():
        if len(same) > 1:
            for report in same:
                others = ", ".join(r.page for r in same if r is not report)
                report.forbidden_text.append(f"title {title!r} is also the title of {others}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a browser closing a connection early is not a problem of the book


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) for the duration of the block; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def book_pages(html_dir: Path) -> list[str]:
    """Relative paths of the book's pages (index first), excluding Sphinx's generated index/search."""
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts and p.name not in SKIP_PAGES)
    pages.sort(key=lambda p: (p != "index.html", p))
    return pages


#: A file of the repository in a launch or source link: GitHub's and Colab's ``/blob/<branch>/<path>``,
#: Binder's ``urlpath=tree/<path>``.
_REPOSITORY_FILE = re.compile(r"/blob/[^/]+/([^?#]+)|[?&]urlpath=(?:lab/)?tree/([^&#]+)")


def missing_repository_files(hrefs: list[str], root: Path) -> list[str]:
    """The launch and source links whose file is not in the repository checked out at ``root``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "book").mkdir(), (Path(tmp) / "book" / "train.ipynb").write_text("{}")
    ...     missing_repository_files([
    ...         "https://colab.research.google.com/github/o/r/blob/main/book/train.ipynb",
    ...         "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/book/runs/x.ipynb"], Path(tmp))
    ['https://mybinder.org/v2/gh/o/r/main?urlpath=tree/book/runs/x.ipynb']
    """
    missing = []
    for href in hrefs:
        found = _REPOSITORY_FILE.search(href) if urlparse(href).scheme in ("http", "https") else None
        if found and not (root / unquote(found.group(1) or found.group(2))).exists():
            missing.append(href)
    return sorted(set(missing))


def _dead_links(html_dir: Path, page: str, hrefs: list[str]) -> list[str]:
    dead = []
    for href in hrefs:
        parsed = urlparse(href)
        if parsed.scheme or parsed.netloc or href.startswith(("mailto:", "javascript:")) or not parsed.path:
            continue
        target = (html_dir / Path(page).parent / unquote(parsed.path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            dead.append(href)
    return sorted(set(dead))


def check_book(
    html_dir: str | Path,
    screenshots: str | Path | None = None,
    min_images: dict[str, int] | None = None,
    executable_path: str | None = None,
    repository: str | Path | None = None,
) -> list[PageReport]:
    """Open every page of a rendered book in headless Chromium and check it.

    Parameters
    ----------
    html_dir : path
        The rendered book (``_build/html``).
    screenshots : path, optional
        Folder for one full-page PNG per page (default: ``html_dir/../screenshots``).
    min_images : dict of str to int, optional
        Regular expression on the page path -> the least number of images it must show (e.g. each
        training page its figures).
    executable_path : str, optional
        Chromium to use (default: the system one).
    repository : path, optional
        The checkout the book was built from: launch and source links (Colab, Binder, GitHub) must
        name files in it. Default: two folders above ``html_dir`` when that holds a ``_config.yml``
        (``<checkout>/_build/html``); otherwise these links are not checked.

    Returns
    -------
    list of PageReport

    Raises
    ------
    TausynthError
        If there is no system Chromium or no rendered book.
    """
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise TausynthError(f"{html_dir}: no rendered book (index.html missing) — run 'tausynth book build'")
    if repository is None and (html_dir.parents[1] / "_config.yml").is_file():
        repository = html_dir.parents[1]
    repository = Path(repository) if repository is not None else None
    chromium = executable_path or find_chromium()
    if chromium is None:
        raise TausynthError("no system Chromium found (install Debian's 'chromium' package)")
    shots = Path(screenshots) if screenshots else html_dir.parent / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    reports: list[PageReport] = []
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for rel in book_pages(html_dir):
                report = PageReport(rel)
                page = context.new_page()
                page.on("console", lambda m, r=report: r.console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, r=report: r.console_errors.append(str(e)))
                page.on("requestfailed", lambda q, r=report: r.failed_requests.append(
                    f"{q.url} ({q.failure})"))
                page.goto(urljoin(base, rel), wait_until="networkidle")
                landed = urlparse(page.url).path.lstrip("/")  # index.html redirects to the first chapter
                if landed and landed != rel:
                    page.wait_for_load_state("networkidle")
                    landed = urlparse(page.url).path.lstrip("/")
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15000)
                images = page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
                report.images = len(images)
                report.broken_images = [src for src, width in images if not width]
                # the page's own content: the theme's header (launch-button logos) is not a figure
                figures = figure_problems(page.eval_on_selector_all(
                    "article img" if page.query_selector("article") else "main img", _CONTENT_IMAGES))
                hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
                report.dead_links = _dead_links(html_dir, landed or rel, hrefs)
                if repository is not None:
                    report.dead_links += [f"{h} (not in the repository)" for h in missing_repository_files(hrefs, repository)]
                report.title = page.title() if not landed or landed == rel else ""  # a redirect has its target's
                text = page.evaluate("(document.querySelector('main') || document.body).innerText")
                truncated = page.eval_on_selector_all(
                    "table td, table th", "els => els.filter(e => ['...', '…'].includes(e.innerText.trim())).length")
                report.forbidden_text = forbidden_text(text, truncated) + figures
                report.viewers, blank = _blank_viewers(page)
                if blank:
                    report.forbidden_text.append(f"{blank} of {report.viewers} volume viewer(s) drew nothing")
                report.screenshot = shots / (_shot_name(rel) + ".png")
                _screenshot(page, report.screenshot)
                for pattern, least in (min_images or {}).items():
                    if re.search(pattern, rel) and report.images < least:
                        report.broken_images.append(f"only {report.images} image(s), expected ≥ {least}")
                page.close()
                reports.append(report)
            _phone_pass(browser, base, reports, shots)
        finally:
            browser.close()
    _duplicate_titles(reports)
    return reports


PHONE = {"width": 390, "height": 844}
#: Chromium renders a full-page screenshot as one bitmap: the longest pages are cut here.
MAX_SHOT_HEIGHT = 16000


def _shot_name(rel: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", rel[:-5])


def _screenshot(page: Any, path: Path) -> None:
    """A full-page PNG, down to :data:`MAX_SHOT_HEIGHT` pixels."""
    height = page.evaluate("document.documentElement.scrollHeight")
    width = page.viewport_size["width"]
    if height <= MAX_SHOT_HEIGHT:
        page.screenshot(path=str(path), full_page=True)
    else:
        page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": MAX_SHOT_HEIGHT})


def _phone_pass(browser: Any, base: str, reports: list[PageReport], shots: Path) -> None:
    """Open every page again at phone width (390 px): the page must not scroll sideways; a screenshot each."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    try:
        for report in reports:
            page = context.new_page()
            page.goto(urljoin(base, report.page), wait_until="networkidle")
            wide = page.evaluate(_OVERFLOW)
            if wide:
                report.forbidden_text.append(
                    f"scrolls sideways at {PHONE['width']} px: the page is {wide[0]} px wide ({wide[1]} sticks out)")
            report.phone_screenshot = shots / f"{_shot_name(report.page)}@{PHONE['width']}.png"
            _screenshot(page, report.phone_screenshot)
            page.close()
    finally:
        context.close()
