"""Check that the built HTML docs render offline: ``make docs-check`` runs this.

1. No page loads a script, a style sheet or an image from the network.
2. Every local image of every page exists and is a readable PNG, JPEG, GIF or SVG.
3. Three pages (formulas, code, a gallery figure) open in headless Chromium
   with the network blocked; in the rendered DOM no raw TeX delimiter
   (``\\(``, ``\\[``, ``$$``) is left, every formula is typeset by MathJax, and no
   ``<img>`` is broken (``naturalWidth`` 0). A screenshot of each page is saved.

Usage: ``python docs/check_pages.py [BUILD_DIR] [--out DIR] [--pages PAGE ...]``;
exits 1 on any failure. Needs Debian's ``chromium`` (``apt-get install chromium``).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

PAGES = (
    "user_guide/knee_search.html",
    "quickstart.html",
    "auto_examples/plot_knee_search.html",
)
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$")
IMAGE_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".gif": (b"GIF87a", b"GIF89a"),
}
# Runs in the page: loads lazy images, then writes what it saw into the DOM.
PROBE = """<script>
window.addEventListener("load", async () => {
  const images = [...document.images];
  images.forEach((img) => { img.loading = "eager"; });
  const ok = await Promise.all(images.map((img) => img.decode().then(() => true, () => false)));
  const broken = images.filter((img, i) => !ok[i] || img.naturalWidth === 0)
                       .map((img) => img.getAttribute("src"));
  const out = document.createElement("pre");
  out.id = "docs-check-probe";
  out.textContent = JSON.stringify({images: images.length, broken: broken});
  document.body.appendChild(out);
});
</script>"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--hide-scrollbars",
    # No network: every host name fails to resolve, and any proxy use goes nowhere.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=20000",
    "--window-size=1280,1800",
)


class _Page(HTMLParser):
    """What a check needs from one HTML document."""

    def __init__(self):
        super().__init__()
        self.resources, self.images, self.text = [], [], []
        self.math, self.math_typeset, self.probe = 0, 0, ""
        self._skip, self._in_probe = 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag in ("script", "style", "pre"):
            self._skip += 1
            self._in_probe = attrs.get("id") == "docs-check-probe"
        if tag == "script" and attrs.get("src"):
            self.resources.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or ""):
            self.resources.append(attrs.get("href", ""))
        if tag == "img":
            self.resources.append(attrs.get("src", ""))
            self.images.append(attrs.get("src", ""))
        # Sphinx writes each formula as span.math or div.math; MathJax puts an
        # mjx-container into each one it typesets.
        self.math += "math" in classes and tag in ("span", "div")
        self.math_typeset += tag == "mjx-container"

    def handle_endtag(self, tag):
        if tag in ("script", "style", "pre"):
            self._skip = max(self._skip - 1, 0)
            self._in_probe = False

    def handle_data(self, data):
        if self._in_probe:
            self.probe += data
        elif not self._skip:
            self.text.append(data)


def parse(html):
    page = _Page()
    page.feed(html)
    return page


def external_resources(page):
    """Scripts, style sheets and images a page would fetch from the network."""
    return [src for src in page.resources if urlsplit(src).scheme in ("http", "https")
            or src.startswith("//")]  # fmt: skip


def raw_tex(page):
    """Pieces of the rendered text that still hold a TeX delimiter."""
    text = " ".join(page.text)
    spans = (text[max(m.start() - 30, 0) : m.end() + 30] for m in RAW_TEX.finditer(text))
    return [" ".join(span.split()) for span in spans]


def bad_image_file(path):
    """Why the image file at ``path`` is unusable, or ``None`` when it is fine."""
    if not path.is_file():
        return "missing"
    head = path.read_bytes()[:16]
    suffix = path.suffix.lower()
    if suffix == ".svg":
        return None if b"<svg" in path.read_bytes()[:4096] else "not an SVG"
    if suffix in IMAGE_MAGIC:
        return None if head.startswith(IMAGE_MAGIC[suffix]) else f"not a {suffix[1:]} file"
    return f"unknown image type {suffix!r}"


def check_files(build):
    """Failures of checks 1 and 2 over every HTML page of ``build``."""
    failures = []
    for html in sorted(build.rglob("*.html")):
        page, name = parse(html.read_text(encoding="utf-8")), html.relative_to(build)
        failures += [f"{name}: loads {src} from the network" for src in external_resources(page)]
        for src in page.images:
            if urlsplit(src).scheme in ("", "file") and not src.startswith("data:"):
                target = (html.parent / unquote(urlsplit(src).path)).resolve()
                why = bad_image_file(target)
                failures += [f"{name}: image {src} is {why}"] if why else []
    return failures


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("check_pages: no chromium found; install it with `apt-get install chromium`.")


def _run_chromium(binary, url, *args):
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    return done.stdout


def render(binary, html, out):
    """The DOM of ``html`` after its scripts ran offline; saves a screenshot in ``out``."""
    probe = html.with_name(html.stem + ".docs-check.html")
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    try:
        dom = _run_chromium(binary, probe.as_uri(), "--dump-dom")
    finally:
        probe.unlink()
    shot = out / (html.stem + ".png")
    _run_chromium(binary, html.as_uri(), f"--screenshot={shot}")
    (out / (html.stem + ".dom.html")).write_text(dom, encoding="utf-8")
    return dom, shot


def check_rendered(name, dom, shot):
    """Failures of check 3 for one page's rendered DOM and screenshot."""
    page = parse(dom)
    if not page.probe:
        return [f"{name}: the page did not finish loading in Chromium"]
    probe = json.loads(page.probe)
    tex = raw_tex(page)
    failures = [f"{name}: raw TeX in the rendered text ({len(tex)} places): …{s}…" for s in tex[:3]]
    if page.math_typeset < page.math:
        failures.append(f"{name}: {page.math - page.math_typeset} of {page.math} formulas "
                        "not typeset")  # fmt: skip
    failures += [f"{name}: broken image {src}" for src in probe["broken"]]
    if not shot.is_file() or bad_image_file(shot):
        failures.append(f"{name}: no screenshot")
    print(f"{name}: {page.math_typeset}/{page.math} formulas typeset, "
          f"{probe['images'] - len(probe['broken'])}/{probe['images']} images shown, "
          f"screenshot {shot}")  # fmt: skip
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("build", nargs="?", default="docs/_build/html", type=Path)
    parser.add_argument("--out", default="docs/_build/check", type=Path)
    parser.add_argument("--pages", nargs="+", default=PAGES)
    args = parser.parse_args(argv)
    build, binary = args.build.resolve(), chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    failures = check_files(build)
    for name in args.pages:
        if not (build / name).is_file():
            failures.append(f"{name}: not built")
            continue
        dom, shot = render(binary, build / name, args.out.resolve())
        failures += check_rendered(name, dom, shot)
    for failure in failures:
        print("FAIL", failure)
    print(f"check_pages: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
