"""The interactive tuner: a local web page with sliders and a live server-side preview.

:func:`serve` binds a threaded ``http.server`` (standard library only; 127.0.0.1 by default) and
starts ONE render process (spawned, it owns the GL context and the project's FrameRenderer). The
page posts slider values (debounced in the browser); the server keeps only the newest request, so
the render process always works on the latest values and skips the ones that came in while it was
busy (stale frames are dropped, and the page ignores any answer older than its last request).
"save config" writes the full config YAML that ``colonsim render --config`` takes.

HTTP API (JSON): ``GET /api/params`` (sliders, current values, whether a real frame is shown);
``POST /api/render {"values": {...}}`` -> ``{"seq": n}``; ``GET /api/frame?seq=n`` waits (at most
``FRAME_WAIT_S``) for a frame at least as new as n -> ``{"seq", "rgb", "depth"}`` (PNG data URLs)
or ``{"error"}``; ``POST /api/save {"values": {...}}`` -> ``{"path"}``; ``GET /real.png``.
"""
from __future__ import annotations

import base64
import json
import logging
import multiprocessing as mp
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlparse

import numpy as np

from colonsim import config as cfgmod
from colonsim.errors import ColonSimError, InputError

log = logging.getLogger(__name__)

PREVIEW_PX = 160
FRAME_WAIT_S = 20.0


def _png(img: np.ndarray) -> bytes:
    import cv2
    ok, buf = cv2.imencode(".png", img[..., ::-1] if img.ndim == 3 else img)
    return buf.tobytes()


def _depth_rgb(depth: np.ndarray) -> np.ndarray:
    """(H, W) float mm -> (H, W, 3) uint8 turbo colours (near = red), black where 0."""
    import cv2
    valid = depth > 0
    lo, hi = (np.percentile(depth[valid], [2, 98]) if valid.any() else (0.0, 1.0))
    t = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = cv2.applyColorMap((255 - t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return rgb * valid[..., None].astype(np.uint8)


def _render_loop(conn, cfg, colons, size_px: int, seed: int) -> None:
    """The render process: receive {seq, values}, send {seq, rgb, depth} (PNG bytes) or {seq, error}."""
    from colonsim.render.scene import FrameRenderer
    from colonsim.tune.fit import apply_params, fit_config

    key, renderer = None, None
    while True:
        msg = conn.recv()
        while conn.poll():          # only the newest request counts
            msg = conn.recv()
        if msg is None:
            return
        try:
            fcfg = fit_config(apply_params(cfg, msg["values"]), size_px)
            k = cfgmod.to_json(fcfg.lens) + cfgmod.to_json(fcfg.tissue)
            if k != key:
                renderer, key = FrameRenderer(fcfg, colons), k
            renderer.set_config(fcfg)
            f = renderer.render(0, seed)
            conn.send({"seq": msg["seq"], "rgb": _png(f.rgb), "depth": _png(_depth_rgb(f.depth))})
        except ColonSimError as e:
            conn.send({"seq": msg["seq"], "error": str(e)})


class _State:
    """What the HTTP threads share: the newest request, the newest frame, and the render process."""

    def __init__(self, cfg, out: Path, real_png: bytes | None, size_px: int, seed: int):
        from colonsim.run.shard import load_colons, mesh_source
        from colonsim.tune.fit import fit_config

        self.cfg, self.out, self.real_png = cfg, out, real_png
        self.cond = threading.Condition()
        self.request_seq, self.pending = 0, None
        self.frame: dict = {"seq": 0}
        self.renders = self.saves = 0
        colons = load_colons(fit_config(cfg, size_px), mesh_source(cfg, "procedural", seed))
        self.conn, child = mp.get_context("spawn").Pipe()
        self.proc = mp.get_context("spawn").Process(target=_render_loop, args=(child, cfg, colons, size_px, seed),
                                                    daemon=True)
        self.proc.start()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def request(self, values: dict) -> int:
        with self.cond:
            self.request_seq += 1
            self.pending = {"seq": self.request_seq, "values": values}
            self.cond.notify_all()
            return self.request_seq

    def _pump(self) -> None:
        """Send the newest pending request to the render process, one at a time."""
        while True:
            with self.cond:
                while self.pending is None:
                    self.cond.wait()
                msg, self.pending = self.pending, None
            if msg.get("stop"):
                return
            self.conn.send(msg)
            try:
                res = self.conn.recv()
            except EOFError:
                return
            with self.cond:
                self.renders += 1
                if res["seq"] > self.frame["seq"]:
                    self.frame = res
                self.cond.notify_all()

    def wait_frame(self, seq: int) -> dict:
        with self.cond:
            self.cond.wait_for(lambda: self.frame["seq"] >= seq, timeout=FRAME_WAIT_S)
            return self.frame

    def save(self, values: dict) -> str:
        from colonsim.tune.fit import apply_params
        tuned = apply_params(self.cfg, values)
        self.out.write_text("# colonsim tune --ui\n" + cfgmod.to_yaml(tuned))
        self.saves += 1
        return str(self.out)

    def close(self) -> None:
        with self.cond:
            self.pending = {"stop": True}
            self.cond.notify_all()
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=5)


def _params_json(cfg) -> dict:
    from colonsim.tune.fit import UI_SPACE, centre_of
    return {"params": [{"key": p.key, "lo": p.lo, "hi": p.hi, "step": (p.hi - p.lo) / 200,
                        "value": float(np.clip(centre_of(cfg, p), p.lo, p.hi))} for p in UI_SPACE]}


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):   # requests go to the log, not to stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, body: bytes, ctype: str, code: int = 200) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj, code: int = 200) -> None:
            self._send(json.dumps(obj).encode(), "application/json", code)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/":
                self._send(PAGE.encode(), "text/html; charset=utf-8")
            elif url.path == "/api/params":
                self._json({**_params_json(state.cfg), "real": state.real_png is not None})
            elif url.path == "/api/frame":
                seq = int(parse_qs(url.query).get("seq", ["0"])[0])
                f = state.wait_frame(seq)
                if "error" in f:
                    self._json({"seq": f["seq"], "error": f["error"]})
                elif "rgb" not in f:
                    self._json({"seq": f["seq"], "error": "no frame yet"})
                else:
                    self._json({"seq": f["seq"], **{k: "data:image/png;base64," + base64.b64encode(f[k]).decode()
                                                    for k in ("rgb", "depth")}})
            elif url.path == "/real.png" and state.real_png is not None:
                self._send(state.real_png, "image/png")
            else:
                self._json({"error": "not found"}, 404)

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length", "0"))
                values = {k: float(v) for k, v in json.loads(self.rfile.read(n) or b"{}").get("values", {}).items()}
            except (ValueError, TypeError, AttributeError):
                return self._json({"error": "expected JSON {\"values\": {key: number}}"}, 400)
            try:
                if self.path == "/api/render":
                    return self._json({"seq": state.request(values)})
                if self.path == "/api/save":
                    return self._json({"path": state.save(values)})
            except ColonSimError as e:
                return self._json({"error": str(e)}, 400)
            self._json({"error": "not found"}, 404)
    return Handler


def serve(cfg, *, real: str | Path | None = None, out: str | Path = "tuned.yaml", host: str = "127.0.0.1",
          port: int = 8765, size_px: int = PREVIEW_PX, seed: int = 0, on_ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> dict:
    """Serve the tuner until ``stop`` is set (or Ctrl-C). ``on_ready(url)`` is called once it listens.

    Raises InputError for a port in use, a bad --real folder, or an output folder that does not exist."""
    import cv2
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"--port must be from 0 to 65535 (0: any free port), got {port!r}")
    try:
        httpd = ThreadingHTTPServer((host, port), None)
    except (OSError, OverflowError, UnicodeError) as e:
        raise InputError(f"cannot listen on {host}:{port} ({getattr(e, 'strerror', None) or e}); "
                         "choose another --port or --host") from None
    try:
        real_png = None
        if real is not None:
            from colonsim.data.realdata import list_images, read_image
            paths = list_images(real)
            img = read_image(paths[len(paths) // 2])
            real_png = _png(cv2.resize(img, (size_px, size_px), interpolation=cv2.INTER_AREA))
        state = _State(cfg, out, real_png, size_px, seed)
    except BaseException:
        httpd.server_close()
        raise
    httpd.RequestHandlerClass = _handler(state)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    if on_ready:
        on_ready(f"http://{host}:{httpd.server_address[1]}/")
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.shutdown()
        httpd.server_close()
        state.close()
    return {"renders": state.renders, "saves": state.saves, "out": str(out)}


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ColonSim tuner</title>
<style>
body { font: 13px sans-serif; margin: 12px; display: flex; gap: 16px; }
#sliders { width: 380px; } .row { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.row label { width: 170px; } .row input[type=range] { flex: 1; } .row span { width: 52px; text-align: right; }
#views img { width: 256px; height: 256px; image-rendering: pixelated; background: #000; margin-right: 6px; }
#status { margin-top: 6px; color: #555; }
</style></head>
<body>
<div id="sliders"><h3>light, camera, tissue, sensor</h3><div id="rows"></div>
<button id="save">save config</button> <span id="saved"></span></div>
<div><div id="views"><img id="rgb" alt="rendered RGB" data-seq="0"><img id="depth" alt="rendered depth">
<img id="real" alt="real frame" style="display:none"></div><div id="status">starting</div></div>
<script>
const DEBOUNCE_MS = 150;
let latest = 0, timer = null;
function values() {
  const v = {};
  document.querySelectorAll("input[data-key]").forEach(e => { v[e.dataset.key] = parseFloat(e.value); });
  return v;
}
async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  return r.json();
}
async function render() {
  const {seq} = await post("/api/render", {values: values()});
  latest = seq;
  document.getElementById("status").textContent = "rendering #" + seq;
  const f = await (await fetch("/api/frame?seq=" + seq)).json();
  if (f.seq < latest) return;            // a newer request is on its way: drop this answer
  if (f.error) { document.getElementById("status").textContent = f.error; return; }
  document.getElementById("rgb").src = f.rgb;
  document.getElementById("depth").src = f.depth;
  document.getElementById("rgb").dataset.seq = f.seq;
  document.getElementById("status").textContent = "frame #" + f.seq;
}
function schedule() { clearTimeout(timer); timer = setTimeout(render, DEBOUNCE_MS); }
async function init() {
  const p = await (await fetch("/api/params")).json();
  const rows = document.getElementById("rows");
  for (const q of p.params) {
    const row = document.createElement("div"); row.className = "row";
    row.innerHTML = `<label>${q.key}</label><input type="range" data-key="${q.key}" min="${q.lo}" max="${q.hi}"
      step="${q.step}" value="${q.value}"><span>${q.value.toPrecision(3)}</span>`;
    const inp = row.querySelector("input"), out = row.querySelector("span");
    inp.addEventListener("input", () => { out.textContent = parseFloat(inp.value).toPrecision(3); schedule(); });
    rows.appendChild(row);
  }
  if (p.real) { const r = document.getElementById("real"); r.src = "/real.png"; r.style.display = ""; }
  document.getElementById("save").addEventListener("click", async () => {
    const r = await post("/api/save", {values: values()});
    document.getElementById("saved").textContent = r.error ? r.error : "saved " + r.path;
  });
  render();
}
init();
</script></body></html>
"""
