"""Headless OpenGL render backend: one GL context and one pyrender renderer per process.

The platform is chosen once, before PyOpenGL is imported: ``COLONSIM_GL=egl|osmesa`` forces it;
otherwise EGL (a GPU, or Mesa llvmpipe on the CPU) when libEGL is installed, else OSMesa. With
neither, :class:`~colonsim.errors.RenderBackendError` says what to install.

:class:`FloatRenderer` is a pyrender ``Renderer`` with these changes:

- a single-sample RGBA32F framebuffer: pyrender's hard-coded 4x multisampling costs about 2.5x on
  llvmpipe, and 8-bit colour would quantize the linear radiance before the sensor model;
- colour and depth come back in ONE float32 read: the ColonSim shader writes linear radiance to
  rgb and the inverse z-depth to alpha (exact, unlike a 24-bit depth buffer);
- shaders from ``colonsim/render/shaders`` and per-frame uniforms (``uniforms``) instead of pyrender's
  lights;
- a lean draw: no blending, no culling, and only the given index ranges
  (``draw_ranges``: the colon's visible chunks, nearest first);
- an optional depth mask drawn first (``add_depth_mask``): pixels the lens never reads are
  rejected by the depth test before they are shaded;
- an optional occlusion test (``add_boxes``, ``occlusion``): after the nearest chunks are drawn,
  an occlusion query per farther chunk draws its bounding box against the depth so far, and the
  chunks whose box passes at no pixel are not drawn.

Only this module imports pyrender and OpenGL. Create the renderer inside the process that uses it
(a GL context does not survive ``fork``; use multiprocessing's 'spawn').
"""
from __future__ import annotations

import atexit
import ctypes.util
import logging
import os
from pathlib import Path

import numpy as np

from colonsim.errors import RenderBackendError

log = logging.getLogger(__name__)

SHADER_DIR = Path(__file__).resolve().parent / "shaders"
PLATFORMS = ("egl", "osmesa")
INSTALL_HINT = ("install Mesa's headless GL: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri "
                "libosmesa6 (or set COLONSIM_GL=egl|osmesa to force one)")

_RENDERER: "GLRenderer | None" = None
_KEEP_FRAMEBUFFERS = 4   # float framebuffers kept per process, newest first: two slots of two sizes

# The depth mask: triangles at the near plane (window depth 0) over the pixels of a view that the
# lens remap never reads, drawn first with colour writes off, so that the depth test rejects every
# scene fragment there before it is shaded (llvmpipe tests depth before running the shader).
_MASK_VERT = """#version 330 core
layout(location = 0) in vec2 p;
void main() { gl_Position = vec4(p, -1.0, 1.0); }
"""
_MASK_FRAG = """#version 330 core
out vec4 c;
void main() { c = vec4(0.0); }
"""
# Occlusion test: the boxes of a colon's chunks (world mm), depth-tested against what is drawn so
# far, with colour and depth writes off.
_BOX_VERT = """#version 330 core
layout(location = 0) in vec3 p;
uniform mat4 VP;
void main() { gl_Position = VP * vec4(p, 1.0); }
"""


def mask_triangles(spans: np.ndarray) -> np.ndarray:
    """(T*3, 2) float32 NDC vertices of triangles covering, in each row r of an s x s view, the
    columns outside ``spans[r] = [first, end)`` (the whole row when first == end). Rows with the
    same span are merged into one band."""
    s = len(spans)
    quads = []
    r = 0
    while r < s:
        q = r + 1
        while q < s and np.array_equal(spans[q], spans[r]):
            q += 1
        first, end = int(spans[r][0]), int(spans[r][1])
        cols = [(0, s)] if first >= end else [(0, first), (end, s)]
        for c0, c1 in cols:
            if c1 > c0:
                quads.append((c0, r, c1, q))
        r = q
    v = []
    for c0, r0, c1, r1 in quads:
        x0, x1, y0, y1 = 2.0 * c0 / s - 1, 2.0 * c1 / s - 1, 2.0 * r0 / s - 1, 2.0 * r1 / s - 1
        v += [(x0, y0), (x1, y0), (x1, y1), (x0, y0), (x1, y1), (x0, y1)]
    return np.asarray(v, np.float32).reshape(-1, 2)


def select_platform() -> str:
    """The PyOpenGL platform to use ('egl' or 'osmesa'), set in PYOPENGL_PLATFORM if not yet set."""
    forced = os.environ.get("COLONSIM_GL", "").strip().lower()
    if forced:
        if forced not in PLATFORMS:
            raise RenderBackendError(f"COLONSIM_GL={forced!r} is not one of {list(PLATFORMS)}")
        platform = forced
    elif os.environ.get("PYOPENGL_PLATFORM") in PLATFORMS:
        platform = os.environ["PYOPENGL_PLATFORM"]
    elif ctypes.util.find_library("EGL"):
        platform = "egl"
    elif ctypes.util.find_library("OSMesa"):
        platform = "osmesa"
    else:
        raise RenderBackendError(f"no headless OpenGL found (neither libEGL nor libOSMesa); {INSTALL_HINT}")
    current = os.environ.get("PYOPENGL_PLATFORM")
    if current and current != platform:
        import sys
        if "OpenGL" in sys.modules:
            raise RenderBackendError(f"PyOpenGL was already imported with PYOPENGL_PLATFORM={current}; "
                                     f"cannot switch to {platform} in this process")
    os.environ["PYOPENGL_PLATFORM"] = platform
    return platform


def _have_x11() -> bool:
    return bool(ctypes.util.find_library("X11") and ctypes.util.find_library("Xrender"))


def import_pyrender():
    """:func:`select_platform`, then ``import pyrender``, on machines with and without X11.

    pyrender imports its viewer and with it pyglet's window module, which loads the X11 client
    libraries (libX11, libXrender) although nothing is ever shown; a headless GPU server often has
    neither, and the import then fails deep inside pyglet. Where they are missing (or with
    ``COLONSIM_PYGLET_HEADLESS=1``), pyglet is put in its headless mode first, which needs only
    libEGL: the EGL platform is then required. Rendering itself never goes through pyglet."""
    import sys

    platform = select_platform()
    if "pyrender" not in sys.modules and (os.environ.get("COLONSIM_PYGLET_HEADLESS") == "1" or not _have_x11()):
        if platform != "egl":
            raise RenderBackendError("pyrender needs the X11 client libraries (libX11, libXrender) with "
                                     f"{platform}: apt-get install libx11-6 libxrender1, or use COLONSIM_GL=egl")
        import pyglet
        pyglet.options["headless"] = True
    try:
        import pyrender
    except Exception as e:  # pyglet and PyOpenGL raise many kinds while loading native libraries
        raise RenderBackendError(f"cannot import pyrender ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}); {INSTALL_HINT}") from None
    return pyrender


def _make_renderer_class():
    import ctypes

    pyrender = import_pyrender()
    from OpenGL import GL as gl
    from OpenGL.raw.GL.VERSION.GL_1_5 import glGetQueryObjectuiv as get_query  # 6x faster than gl.'s
    from pyrender.shader_program import ShaderProgramCache

    def _program(vertex_source: str) -> int:
        """A GL program of ``vertex_source`` and the fragment shader that writes nothing visible
        (the depth mask and the occlusion boxes draw with colour writes off)."""
        from OpenGL.GL import shaders
        return shaders.compileProgram(shaders.compileShader(vertex_source, gl.GL_VERTEX_SHADER),
                                      shaders.compileShader(_MASK_FRAG, gl.GL_FRAGMENT_SHADER))

    def _vertex_array(vertices: np.ndarray) -> tuple[int, int]:
        """(vao, vbo) of (n, c) float32 ``vertices`` at attribute 0 (n may be 0)."""
        vao = gl.glGenVertexArrays(1)
        vbo = gl.glGenBuffers(1)
        gl.glBindVertexArray(vao)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, vbo)
        gl.glBufferData(gl.GL_ARRAY_BUFFER, max(vertices.nbytes, 8), vertices if vertices.size else None,
                        gl.GL_STATIC_DRAW)
        gl.glEnableVertexAttribArray(0)
        gl.glVertexAttribPointer(0, vertices.shape[1], gl.GL_FLOAT, gl.GL_FALSE, 0, None)
        gl.glBindVertexArray(0)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, 0)
        return vao, vbo

    class FloatRenderer(pyrender.Renderer):
        """pyrender Renderer: single-sample float framebuffer, ColonSim shaders and uniforms."""

        def __init__(self, width: int, height: int):
            super().__init__(width, height)
            self._program_cache = ShaderProgramCache(shader_dir=str(SHADER_DIR))
            self.uniforms: dict = {}
            self._locations: dict[int, dict[str, int]] = {}   # program id -> uniform name -> location
            self._fbs: dict = {}            # (w, h, slot) -> (framebuffer, colour rb, depth rb, buffer)
            self.slot = 0                   # which framebuffer of the size the next render draws into
            self.defer = False              # render returns (w, h, slot) after a flush, not pixels
            self.draw_ranges: tuple[np.ndarray, np.ndarray] | None = None   # (counts, byte offsets)
            self.depth_mask = None          # a key of _masks, drawn before the frame's first mesh
            self._mask_pending = False
            self._masks: dict = {}          # key -> (vao, vbo, n vertices)
            self._mask_program = None
            # occlusion test of draw_ranges: (boxes key, chunk of each range, testable (bool per
            # range), ranges drawn before the test); see _draw_occluded.
            self.occlusion = None
            self._boxes: dict = {}          # key -> (vao, vbo)
            self._box_program = None
            self._box_vp = -1
            self._queries: list[int] = []
            self._view_proj = np.eye(4, dtype=np.float32)
            self._query_result = ctypes.c_uint(0)
            self.cull_stats = np.zeros(2, np.int64)   # triangles in draw_ranges, of them skipped

        def add_boxes(self, key, triangles: np.ndarray) -> None:
            """Upload the occlusion boxes of a mesh's chunks ((K * 36, 3) float32, chunk k from
            vertex 36 k) under ``key``."""
            if key in self._boxes:
                return
            if self._box_program is None:
                self._box_program = _program(_BOX_VERT)
                self._box_vp = gl.glGetUniformLocation(self._box_program, "VP")
            self._boxes[key] = _vertex_array(np.ascontiguousarray(triangles, np.float32))

        def _get_camera_matrices(self, scene):
            V, P = super()._get_camera_matrices(scene)
            self._view_proj = (P @ V).astype(np.float32)
            return V, P

        def _hidden(self, key, pose, chunk_ids, candidates) -> set:
            """The ranges among ``candidates`` whose chunk's box fails the depth test at every
            pixel against what is drawn so far. The box holds its chunk with a margin and is drawn
            with the same depth test, so a chunk whose box passes nowhere would pass nowhere either:
            skipping it changes no pixel. (One wait for the rasterizer per call.)"""
            if not candidates:
                return set()
            while len(self._queries) < len(candidates):
                self._queries.extend(int(q) for q in np.atleast_1d(gl.glGenQueries(64)))
            gl.glUseProgram(self._box_program)
            gl.glUniformMatrix4fv(self._box_vp, 1, gl.GL_TRUE, self._view_proj @ np.asarray(pose, np.float32))
            gl.glColorMask(False, False, False, False)
            gl.glDepthMask(False)
            gl.glBindVertexArray(self._boxes[key][0])
            for q, j in zip(self._queries, candidates):
                gl.glBeginQuery(gl.GL_ANY_SAMPLES_PASSED, q)
                gl.glDrawArrays(gl.GL_TRIANGLES, 36 * int(chunk_ids[j]), 36)
                gl.glEndQuery(gl.GL_ANY_SAMPLES_PASSED)
            gl.glBindVertexArray(0)
            gl.glColorMask(True, True, True, True)
            gl.glDepthMask(True)
            hidden, result = set(), self._query_result
            for q, j in zip(self._queries, candidates):   # the first read waits for the rasterizer
                get_query(q, gl.GL_QUERY_RESULT, result)
                if not result.value:
                    hidden.add(j)
            return hidden

        def _draw_occluded(self, primitive, pose, program, counts, offsets) -> None:
            """Draw the first ``near`` ranges, then those of the rest that :meth:`_hidden` does not
            find hidden behind them, in order."""
            key, chunk_ids, testable, near = self.occlusion
            gl.glMultiDrawElements(primitive.mode, counts[:near], gl.GL_UNSIGNED_INT, offsets[:near], near)
            rest = range(near, len(counts))
            hidden = self._hidden(key, pose, chunk_ids, [j for j in rest if testable[j]])
            program._bind()
            primitive._bind()
            draw = [j for j in rest if j not in hidden]
            if draw:
                gl.glMultiDrawElements(primitive.mode, counts[draw], gl.GL_UNSIGNED_INT, offsets[draw], len(draw))
            self.cull_stats += (int(counts.sum()) // 3, sum(int(counts[j]) for j in hidden) // 3)

        def add_depth_mask(self, key, spans: np.ndarray) -> None:
            """Upload the depth mask of a view (see mask_triangles) under ``key``."""
            if key in self._masks:
                return
            if self._mask_program is None:
                self._mask_program = _program(_MASK_VERT)
            tri = np.ascontiguousarray(mask_triangles(spans))
            self._masks[key] = (*_vertex_array(tri), len(tri))

        def _draw_depth_mask(self, program) -> None:
            self._mask_pending = False
            vao, _, n = self._masks[self.depth_mask]
            if n == 0:
                return
            gl.glUseProgram(self._mask_program)
            gl.glColorMask(False, False, False, False)
            gl.glDisable(gl.GL_CULL_FACE)
            gl.glBindVertexArray(vao)
            gl.glDrawArrays(gl.GL_TRIANGLES, 0, n)
            gl.glBindVertexArray(0)
            gl.glColorMask(True, True, True, True)
            program._bind()

        def _configure_main_framebuffer(self):
            # One float framebuffer per (size, slot), kept: a pipelined caller draws the next frame
            # into one slot while llvmpipe still rasterizes the previous frame in the other.
            w, h = self.viewport_width, self.viewport_height
            key = (w, h, self.slot)
            if key not in self._fbs:
                cb, db = gl.glGenRenderbuffers(2)
                gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, cb)
                gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_RGBA32F, w, h)
                gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, db)
                gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_DEPTH_COMPONENT24, w, h)
                fb = gl.glGenFramebuffers(1)
                gl.glBindFramebuffer(gl.GL_DRAW_FRAMEBUFFER, fb)
                gl.glFramebufferRenderbuffer(gl.GL_DRAW_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0,
                                             gl.GL_RENDERBUFFER, cb)
                gl.glFramebufferRenderbuffer(gl.GL_DRAW_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT,
                                             gl.GL_RENDERBUFFER, db)
                status = gl.glCheckFramebufferStatus(gl.GL_DRAW_FRAMEBUFFER)
                if status != gl.GL_FRAMEBUFFER_COMPLETE:
                    raise RenderBackendError(f"float framebuffer incomplete (status {status}); {INSTALL_HINT}")
                self._fbs[key] = (fb, cb, db, np.empty((h, w, 4), np.float32))
                for old in list(self._fbs)[:-_KEEP_FRAMEBUFFERS]:   # a process that renders many sizes
                    ofb, ocb, odb, _ = self._fbs.pop(old)
                    gl.glDeleteFramebuffers(1, [ofb])
                    gl.glDeleteRenderbuffers(2, [ocb, odb])
            fb = self._fbs[key][0]
            self._main_fb = self._main_fb_ms = fb   # pyrender draws into _main_fb_ms: no multisampling
            self._main_fb_dims = (w, h)

        def _delete_main_framebuffer(self):
            for fb, cb, db, _ in self._fbs.values():
                gl.glDeleteFramebuffers(1, [fb])
                gl.glDeleteRenderbuffers(2, [cb, db])
            self._fbs = {}
            self._main_fb = self._main_cb = self._main_db = None
            self._main_fb_ms = self._main_cb_ms = self._main_db_ms = None
            self._main_fb_dims = (None, None)

        def _read_main_framebuffer(self, scene, flags):
            w, h = self._main_fb_dims
            if self.defer:
                gl.glFlush()   # llvmpipe starts rasterizing now; read_slot waits for it
                return (w, h, self.slot)
            return self.read_slot(w, h, self.slot)

        def read_slot(self, w: int, h: int, slot: int, out: np.ndarray | None = None) -> np.ndarray:
            """The (h, w, 4) float32 read-back of a slot's framebuffer (waits for its rendering),
            into ``out`` or the slot's own buffer (reused by its next read)."""
            fb, _, _, buf = self._fbs[(w, h, slot)]
            gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, fb)
            gl.glReadPixels(0, 0, w, h, gl.GL_RGBA, gl.GL_FLOAT, array=buf if out is None else out)
            return buf if out is None else out

        def _bind_and_draw_primitive(self, primitive, pose, program, flags):
            # pyrender's version sets a dozen material uniforms our shader does not read and leaves
            # GL_BLEND on with (ONE, ZERO), which llvmpipe still pays for per fragment. Ours binds
            # the texture, turns blending and culling off (the shader is two-sided), and draws either the
            # whole index buffer or, when ``draw_ranges`` is set, only those index ranges in that
            # order (visible chunks of the colon, nearest first: see colonsim.render.scene).
            if self._mask_pending:
                self._draw_depth_mask(program)
            program.set_uniform("M", pose)
            primitive._bind()
            material = primitive.material
            if material.baseColorTexture is not None:
                self._bind_texture(material.baseColorTexture, "material.base_color_texture", program)
            gl.glDisable(gl.GL_BLEND)
            gl.glPolygonMode(gl.GL_FRONT_AND_BACK, gl.GL_FILL)
            gl.glDisable(gl.GL_CULL_FACE)
            ranges = self.draw_ranges
            if ranges is None or primitive.indices is None:
                gl.glDrawElements(primitive.mode, primitive.indices.size, gl.GL_UNSIGNED_INT, None)
            elif self.occlusion is not None and len(ranges[0]) > self.occlusion[3]:
                self._draw_occluded(primitive, pose, program, *ranges)
            elif len(ranges[0]):
                counts, offsets = ranges
                gl.glMultiDrawElements(primitive.mode, counts, gl.GL_UNSIGNED_INT, offsets, len(counts))
            primitive._unbind()

        def _bind_lighting(self, scene, program, node, flags):
            # pyrender's set_uniform looks every location up again; a frame sets ~17 of ours, so
            # their locations are cached per program (-1: not used by that shader, skipped).
            locs = self._locations.setdefault(program._program_id, {})
            for name, value in self.uniforms.items():
                loc = locs.get(name)
                if loc is None:
                    loc = locs[name] = gl.glGetUniformLocation(program._program_id, name)
                if loc == -1:
                    continue
                if isinstance(value, np.ndarray) and value.shape == (3,):
                    gl.glUniform3fv(loc, 1, value.astype(np.float32, copy=False))
                elif isinstance(value, np.ndarray):
                    program.set_uniform(name, value)
                elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                    gl.glUniform1i(loc, int(value))
                else:
                    gl.glUniform1f(loc, float(value))

    return FloatRenderer


class GLRenderer:
    """The process's GL context and renderer. Use :func:`get_renderer`; do not build one per frame."""

    def __init__(self):
        self.platform_name = select_platform()
        import_pyrender()
        try:
            if self.platform_name == "egl":
                from pyrender.platforms import egl
                device = egl.get_device_by_index(int(os.environ.get("EGL_DEVICE_ID", "0")))
                self._platform = egl.EGLPlatform(64, 64, device=device)
            else:
                from pyrender.platforms.osmesa import OSMesaPlatform
                self._platform = OSMesaPlatform(64, 64)
            self._platform.init_context()
            self._platform.make_current()
        except Exception as e:  # the GL stack raises many kinds; all mean "no usable GL here"
            raise RenderBackendError(f"cannot create a {self.platform_name} GL context "
                                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                     f"{INSTALL_HINT}") from None
        self.renderer = _make_renderer_class()(64, 64)
        self.pid = os.getpid()
        from OpenGL import GL as gl
        log.info("GL context: %s, %s", self.platform_name, gl.glGetString(gl.GL_RENDERER))

    def render(self, scene, width: int, height: int, uniforms: dict,
               draw_ranges: "tuple[np.ndarray, np.ndarray] | None" = None, depth_mask=None,
               slot: int = 0, defer: bool = False, occlusion: tuple | None = None):
        """Render ``scene`` from its main camera. Returns (h, w, 4) float32, rows bottom-up:
        rgb linear radiance, a = 1 / z-depth (1/mm), 0 where there is no surface. The array is a
        buffer reused by the next render of the same size: copy what you keep.

        draw_ranges: (counts, byte offsets) of the index ranges to draw, in order, for every
        visible mesh (None: all of each mesh's triangles).
        depth_mask: the key of a mask added with ``renderer.add_depth_mask``: those pixels keep
        their cleared value (0: no surface) and cost no shading.
        slot: which of the framebuffers of this size to draw into (0 or 1).
        defer: draw and flush only, returning a ticket for :meth:`read`: the CPU rasterizer works
        on it while the caller prepares and draws the next frame into the other slot.
        occlusion: skip the draw ranges whose chunk is hidden behind the first ones: (key of boxes
        added with ``renderer.add_boxes``, chunk index of each range, whether each range may be
        tested, how many ranges are drawn before the test); the pixels are the same as without it."""
        import pyrender  # imported by __init__ (import_pyrender)
        r = self.renderer
        r.viewport_width, r.viewport_height = int(width), int(height)
        r.uniforms = uniforms
        r.draw_ranges = draw_ranges
        r.occlusion = occlusion
        r.depth_mask = depth_mask
        r._mask_pending = depth_mask is not None
        r.slot, r.defer = int(slot), bool(defer)
        flags = pyrender.RenderFlags.OFFSCREEN | pyrender.RenderFlags.SKIP_CULL_FACES
        return r.render(scene, flags)

    def render_pass(self, shaders: str, scene, width: int, height: int, uniforms: dict,
                    draw_ranges: "tuple[np.ndarray, np.ndarray] | None" = None, depth_mask=None,
                    slot: int = 0, occlusion: tuple | None = None) -> np.ndarray:
        """As :meth:`render`, with the shaders of ``shaders/<shaders>`` instead of the colour ones:
        the same geometry and depth test as the colour pass, a = 1 / z-depth. ``normals``: rgb = the
        unit surface normal in the view's camera frame (OpenGL axes, turned to face the camera);
        ``polypmask``: r = 1 where the visible surface is a polyp's (the g channel of the mesh's
        COLOR_0). ``uniforms`` needs ``u_cam_fwd``."""
        r = self.renderer
        caches = self.__dict__.setdefault("_pass_caches", {})
        if shaders not in caches:
            from pyrender.shader_program import ShaderProgramCache
            caches[shaders] = ShaderProgramCache(shader_dir=str(SHADER_DIR / shaders))
        colour_cache, r._program_cache = r._program_cache, caches[shaders]
        try:
            return self.render(scene, width, height, uniforms, draw_ranges, depth_mask=depth_mask, slot=slot,
                               occlusion=occlusion)
        finally:
            r._program_cache = colour_cache

    def read(self, ticket, out: np.ndarray | None = None) -> np.ndarray:
        """The pixels of a deferred render (``ticket`` from ``render(..., defer=True)``): as
        :meth:`render` returns them, into ``out`` if given (a new array per frame, for a frame
        that must outlive the slot's next render)."""
        w, h, slot = ticket
        return self.renderer.read_slot(w, h, slot, out)

    def close(self) -> None:
        global _RENDERER
        if getattr(self, "_platform", None) is not None:
            self._platform.make_current()
            self.renderer.delete()
            self._platform.delete_context()
            self._platform = None
        if _RENDERER is self:
            _RENDERER = None


def get_renderer() -> GLRenderer:
    """The GL renderer of this process, created on the first call and reused afterwards."""
    global _RENDERER
    if _RENDERER is None or _RENDERER.pid != os.getpid():
        _RENDERER = GLRenderer()
        atexit.register(_RENDERER.close)   # before interpreter teardown, while PyOpenGL still imports
    return _RENDERER
