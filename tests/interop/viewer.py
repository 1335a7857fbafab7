"""The viewer page in a real browser: Debian's Chromium, headless, driven by Playwright.

The page lists the server's UDFs (native and code); selecting the vector tile demo draws its
features on the map (read back through MapLibre's API, and kept as a screenshot); changing a
parameter changes what is drawn; a failing UDF's error is shown; file UDFs preview their table;
without a token the page asks for one."""
import os
import re

base = os.environ["FUSED_TEST_BASE_URL"]  # …/v1
origin = base[: -len("/v1")]
token = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN"] = token
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import fused  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"


# A tile UDF saved with the SDK and shared: listed beside the server's own.
@fused.udf
def saved_dots(bounds: fused.types.Bounds = None, n: int = 3):
    import geopandas as gpd
    import shapely
    w, s, e, n_ = bounds
    pts = [shapely.Point(w + (i + 0.5) * (e - w) / n, (s + n_) / 2) for i in range(n)]
    return gpd.GeoDataFrame({"i": list(range(n))}, geometry=pts, crs=4326)


saved_dots.to_fused()
fused.load("saved_dots").create_access_token()
artifacts = os.environ["FUSED_TEST_ARTIFACTS"]
os.makedirs(artifacts, exist_ok=True)

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

RENDERED = """(layer) => {
  const m = window.fusedViewer && window.fusedViewer.map;
  if (!m || !m.getLayer(layer) || !m.loaded() || !m.areTilesLoaded()) return null;
  return m.queryRenderedFeatures({layers: [layer]}).length || null;
}"""


def rendered(page, layer):
    """How many features of `layer` MapLibre has drawn, once the map has settled."""
    page.wait_for_function(RENDERED, arg=layer, timeout=60_000)
    page.wait_for_timeout(300)
    return page.evaluate(RENDERED, layer)


def ready(page):
    page.wait_for_function("document.body.dataset.state === 'ready' || document.body.dataset.state === 'error'", timeout=60_000)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
    console = []
    # Playwright's polling waits evaluate strings, which the page's Content-Security-Policy
    # forbids; the fresh page below runs under that policy.
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        page.goto(f"{origin}/#token={token}")
        page.wait_for_selector('#udf-list li[data-udf="vector_tile"]', timeout=30_000)
        # The token left the address bar (it stays in the browser's storage).
        assert "token=" not in page.url, page.url
        listed = page.eval_on_selector_all("#udf-list li", "els => els.map(e => e.dataset.udf)")
        for name in ["hello", "vector_tile", "raster_tile", "h3_relief", "tile_bounds", "raises", "saved_dots"]:
            assert name in listed, (name, listed)
        assert "python" in page.inner_text('#udf-list li[data-udf="tile_bounds"]').lower()

        # The vector tile demo draws its cells on the map.
        page.evaluate("window.fusedViewer.selectUdf('vector_tile')")
        ready(page)
        four = rendered(page, "udf-fill")
        page.screenshot(path=os.path.join(artifacts, "viewer-vector_tile-cells4.png"))
        props = page.evaluate(
            "window.fusedViewer.map.queryRenderedFeatures({layers: ['udf-fill']})[0].properties"
        )
        assert {"id", "row", "col", "value", "label"} <= set(props), props
        assert page.input_value('#params [name="cells"]') == "4"
        curl = page.inner_text("#curl")
        assert "curl" in curl and "/run/tiles/" in curl and "format=mvt" in curl, curl
        share = page.inner_text("#share-url")
        assert "tiles.json" in share, share

        # More cells per tile: more features drawn.
        page.evaluate("window.fusedViewer.setParam('cells', 8)")
        ready(page)
        page.wait_for_function(
            f"(() => {{ const n = ({RENDERED})('udf-fill'); return n && n > 2 * {four}; }})()",
            timeout=60_000,
        )
        eight = rendered(page, "udf-fill")
        assert eight > 2 * four, (four, eight)
        assert "cells=8" in page.inner_text("#curl")
        page.screenshot(path=os.path.join(artifacts, "viewer-vector_tile-cells8.png"))
        assert page.inner_text("#error").strip() == "", page.inner_text("#error")

        # A Python tile UDF (the code runtime) draws too.
        page.evaluate("window.fusedViewer.selectUdf('tile_bounds')")
        ready(page)
        assert rendered(page, "udf-fill") > 0

        # The UDF saved with the SDK draws its points.
        page.evaluate("window.fusedViewer.selectUdf('saved_dots')")
        ready(page)
        assert rendered(page, "udf-circle") > 0

        # A raster tile UDF becomes an image layer.
        page.evaluate("window.fusedViewer.selectUdf('raster_tile')")
        ready(page)
        page.wait_for_function("!!window.fusedViewer.map.getLayer('udf-raster')", timeout=30_000)
        page.screenshot(path=os.path.join(artifacts, "viewer-raster_tile.png"))

        # A file UDF: its table previewed.
        page.evaluate("window.fusedViewer.selectUdf('hello')")
        ready(page)
        page.wait_for_function(
            "document.querySelector('#table-preview') && document.querySelector('#table-preview').innerText.includes('Hello, world!')",
            timeout=30_000,
        )
        page.evaluate("window.fusedViewer.setParam('name', 'Browser')")
        ready(page)
        page.wait_for_function(
            "document.querySelector('#table-preview').innerText.includes('Hello, Browser!')",
            timeout=30_000,
        )

        # A file UDF returning a GeoDataFrame: its rows previewed and its points on the map.
        page.evaluate("window.fusedViewer.selectUdf('points_gdf')")
        ready(page)
        assert rendered(page, "udf-circle") == 5
        preview = page.inner_text("#table-preview")
        assert "5" in preview and "id" in preview, preview

        # A failing UDF: its error is shown, and the page stays usable.
        page.evaluate("window.fusedViewer.selectUdf('raises')")
        ready(page)
        page.wait_for_function(
            "document.querySelector('#error').innerText.includes('this UDF always fails')",
            timeout=30_000,
        )
        assert page.is_visible("#error")
        page.screenshot(path=os.path.join(artifacts, "viewer-error.png"))
        page.evaluate("window.fusedViewer.selectUdf('vector_tile')")
        ready(page)
        assert rendered(page, "udf-fill") > 0
        assert page.inner_text("#error").strip() == ""

        # A wrong parameter value is a clear message, not a broken page.
        page.evaluate("window.fusedViewer.setParam('cells', 1000)")
        ready(page)
        page.wait_for_function("document.querySelector('#error').innerText.length > 0", timeout=30_000)
        assert re.search(r"cells", page.inner_text("#error")), page.inner_text("#error")

        # Nothing was fetched from anywhere but this server.
        # (Checked on a fresh page below, which records every request.)
    except Exception:
        page.screenshot(path=os.path.join(artifacts, "viewer-failure.png"))
        print("\n".join(console))
        raise

    # A fresh browser, under the page's Content-Security-Policy: no token yet, so the page asks
    # for one; then it draws with nothing blocked, and every request stays on this server.
    context = browser.new_context()
    fresh = context.new_page()
    requests, messages = [], []
    fresh.on("request", lambda r: requests.append(r.url))
    fresh.on("console", lambda m: messages.append(m.text))
    fresh.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    fresh.goto(f"{origin}/?udf=vector_tile")
    fresh.wait_for_selector("text=owner.token", timeout=30_000)
    fresh.fill("input[type=password]", token)
    fresh.keyboard.press("Enter")
    fresh.wait_for_selector('#udf-list li[data-udf="vector_tile"]', timeout=30_000)
    fresh.wait_for_selector("body[data-state=ready]", timeout=60_000)
    drawn = 0
    for _ in range(100):
        drawn = fresh.evaluate(
            "window.fusedViewer.map.queryRenderedFeatures({layers: ['udf-fill']}).length"
        )
        if drawn:
            break
        fresh.wait_for_timeout(100)
    assert drawn > 0, messages
    blocked = [m for m in messages if "Content Security Policy" in m or "pageerror" in m]
    assert not blocked, blocked
    outside = [u for u in requests if not (u.startswith(origin) or u.startswith("blob:") or u.startswith("data:"))]
    assert not outside, outside
    browser.close()

print("ALL OK")
