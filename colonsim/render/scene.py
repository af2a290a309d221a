"""The per-frame renderer: colon meshes, the scope's lens and lights, tissue, and the sensor.

:class:`FrameRenderer` builds everything that does not change between frames once, in the process
that renders (GL context, scene with every colon mesh, per-mesh textures, lens remap maps). Frame
``i`` then depends only on ``(cfg, seed, i)``: its random streams come from
``SeedSequence([seed, i])``, spawned into trajectory, tissue, light and sensor streams in that
order, and nothing is carried over from earlier frames.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from colonsim.errors import InputError
from colonsim.render import light as lightmod
from colonsim.render import sensor as sensormod
from colonsim.render import tissue as tissuemod
from colonsim.render.lens import Lens, Remap
from colonsim.render.trajectory import pose_for_frame

STREAMS = ("trajectory", "tissue", "light", "sensor")

_MALLOC_MMAP_BYTES = 64 << 20    # glibc: allocations below this come from the heap, not fresh mmaps
_MALLOC_TRIM_BYTES = 256 << 20   # glibc: free heap memory kept before it is returned to the system


def _keep_freed_memory() -> None:
    """Let glibc reuse the memory of freed frame-sized arrays instead of returning it to the system.

    A frame allocates a few dozen arrays of 0.2-1 MB. By default glibc serves each from a fresh
    mmap and unmaps it when freed, so every frame pays ~600 page faults (2-3 ms of kernel time at
    256x256, a third of the sensor model). Values are unchanged; the process keeps its peak heap.
    No-op where mallopt is not glibc's.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(-1, _MALLOC_TRIM_BYTES)   # M_TRIM_THRESHOLD
    mallopt(-3, _MALLOC_MMAP_BYTES)   # M_MMAP_THRESHOLD


@dataclass
class Frame:
    """One rendered frame (see the HDF5 contract in DESIGN.md)."""
    rgb: np.ndarray          # (h, w, 3) uint8 sRGB, after the sensor model
    depth: np.ndarray        # (h, w) float32 z-depth, mm; 0 outside the mask or with no surface
    mask: np.ndarray         # (h, w) uint8, 1 inside the lens's image circle
    pose: np.ndarray         # (4, 4) float32 camera-to-world, mm, OpenGL axes
    intrinsics: np.ndarray   # (3, 3) float32 pinhole matrix of the frame
    params: dict             # name -> float: every value drawn for this frame, same keys every frame


CHUNK_MM = 30.0   # arc length of centreline covered by one draw chunk of a colon mesh
# Occlusion culling (see Chunks.box_triangles and colonsim.render.backend): the nearest OCCLUDE_NEAR
# chunks of a view are drawn first; every farther chunk whose box then fails the depth test at
# every pixel is skipped. In the views of a 100k-triangle colon about two thirds of the frustum's
# triangles lie behind folds and bends. (6 then 12 chunks, in two tests, culled as much, 4 less.)
OCCLUDE_NEAR = 8
BOX_MARGIN_MM = 2.0   # a chunk's box is grown by this much: depth rounding cannot put it behind the chunk


@dataclass
class Chunks:
    """A colon's triangles in chunks along its centreline, for per-view culling and ordering.

    The mesh's faces are sorted by the arc length of their nearest centreline point, so chunk k is
    the contiguous index range ``[start[k], start[k] + count[k])`` of faces, bounded by the sphere
    ``center[k]``, ``radius[k]`` (mm, world)."""
    start: np.ndarray    # (K,) int64, first face
    count: np.ndarray    # (K,) int64, faces
    center: np.ndarray   # (K, 3) float64
    radius: np.ndarray   # (K,) float64
    # (K, 8, 3) float64: the corners of each chunk's oriented bounding box (principal axes of its
    # vertices), grown by BOX_MARGIN_MM; None: no occlusion test for these chunks.
    corners: np.ndarray | None = None

    def ranges(self, view_pose: np.ndarray, half_tan: float, znear: float, zfar: float
               ) -> tuple[np.ndarray, np.ndarray]:
        """(index counts, byte offsets) of the chunks that a square pinhole view sees, nearest
        first. view_pose: (4, 4) camera-to-world (looking along -z); half_tan: tan of the half
        field of view. A chunk is dropped only if its bounding sphere lies wholly outside the view
        frustum, so nothing visible is lost; the order lets the depth test skip hidden fragments."""
        return self.ranges_of(self.visible(view_pose, half_tan, znear, zfar))

    def ranges_of(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index counts, byte offsets) of the chunks ``keep``, in that order."""
        return (3 * self.count[keep]).astype(np.int32), (12 * self.start[keep]).astype(np.int64)

    def visible(self, view_pose: np.ndarray, half_tan: float, znear: float, zfar: float) -> np.ndarray:
        """The indices of the chunks that :meth:`ranges` draws, in its order."""
        rel = (self.center - view_pose[:3, 3]) @ view_pose[:3, :3]   # camera coordinates
        x, y, depth = rel[:, 0], rel[:, 1], -rel[:, 2]
        norm = np.sqrt(1.0 + half_tan * half_tan)
        r = self.radius
        inside = ((np.abs(x) - half_tan * depth) / norm <= r) & ((np.abs(y) - half_tan * depth) / norm <= r) \
            & (depth + r >= znear) & (depth - r <= zfar)
        keep = np.nonzero(inside)[0]
        return keep[np.argsort(np.linalg.norm(rel[keep], axis=1) - r[keep], kind="stable")]

    def box_triangles(self) -> np.ndarray:
        """(K * 36, 3) float32: the 12 triangles of each chunk's box, chunk k at vertex 36 k."""
        quads = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))
        idx = [i for a, b, c, d in quads for i in (a, b, c, a, c, d)]
        return np.ascontiguousarray(self.corners[:, idx].reshape(-1, 3), np.float32)


def _box_corners(v: np.ndarray, margin: float) -> np.ndarray:
    """(8, 3) corners of the box around points ``v`` (n, 3) along their principal axes, grown by
    ``margin``; corner index = 4 i + 2 j + k for (low, high) along axes 0, 1, 2."""
    c = v.mean(axis=0)
    _, _, axes = np.linalg.svd(v - c, full_matrices=False)
    local = (v - c) @ axes.T
    lo, hi = local.min(axis=0) - margin, local.max(axis=0) + margin
    box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return box @ axes + c


def _chunk_faces(colon, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, Chunks]:
    """The faces reordered along the centreline, and their chunks (see :class:`Chunks`)."""
    from scipy.spatial import cKDTree

    line = colon.centerline
    s_line = line.arclength_mm()
    _, nearest = cKDTree(line.points_mm).query(vertices[faces].mean(axis=1))
    s_face = s_line[nearest]
    order = np.argsort(s_face, kind="stable")
    faces, s_face = faces[order], s_face[order]
    n_chunks = max(1, int(np.ceil((s_line[-1] + 1e-9) / CHUNK_MM)))
    bounds = np.searchsorted(s_face, np.linspace(0.0, s_line[-1], n_chunks + 1)[1:-1], side="right")
    start = np.concatenate([[0], bounds]).astype(np.int64)
    count = np.diff(np.concatenate([start, [len(faces)]]))
    start, count = start[count > 0], count[count > 0]
    centers, radii, corners = [], [], []
    for a, n in zip(start, count):
        v = vertices[faces[a:a + n]].reshape(-1, 3)
        c = 0.5 * (v.min(axis=0) + v.max(axis=0))
        centers.append(c)
        radii.append(float(np.sqrt(((v - c) ** 2).sum(axis=1).max())) + 1e-3)
        corners.append(_box_corners(v, BOX_MARGIN_MM))
    return faces, Chunks(start, count, np.array(centers), np.array(radii), np.array(corners))


@dataclass
class MeshParts:
    """A colon's draw data, built without GL (:func:`prepare`): a render worker gets them from the
    process that built the meshes instead of computing them again (about 0.35 s per 100k-triangle
    colon)."""
    positions: np.ndarray   # (V, 3) float32, mm
    normals: np.ndarray     # (V, 3) float32
    color: np.ndarray       # (V, 4) float32: fold factor mapped to [0, 1] in r, polyp flag (0/1) in g
    faces: np.ndarray       # (F, 3) uint32, sorted along the centreline (see Chunks)
    chunks: Chunks
    texture: np.ndarray     # (n, n, 4) uint8 tissue texture (colonsim.render.tissue / texbank.make_texture)


def mesh_parts(colon, tissue_cfg, mesh_id: int) -> MeshParts:
    """The :class:`MeshParts` of one colon: fold factor in the vertex colour, the tissue texture
    of (texture_seed, mesh_id) (procedural, or from ``tissue_cfg.texture_bank``), faces sorted along the centreline and their chunks."""
    tm = colon.mesh
    vertices = np.asarray(tm.vertices, np.float64)
    faces = np.asarray(tm.faces, np.int64)
    normals = np.asarray(tm.vertex_normals, np.float64)
    fold = tissuemod.fold_factor(vertices, faces, normals)
    color = np.ones((len(vertices), 4), np.float32)
    color[:, 0] = 0.5 + 0.5 * fold
    # g: 1 on a polyp's vertices (the polyp mask pass; the colour pass reads r only)
    owner = getattr(colon, "vertex_polyp", None)
    color[:, 1] = 0.0 if owner is None or len(owner) != len(vertices) else (np.asarray(owner) >= 0)
    rng = np.random.default_rng(np.random.SeedSequence([tissue_cfg.texture_seed, mesh_id]))
    if tissue_cfg.texture_bank is not None:
        from colonsim.render import texbank
        tex = texbank.make_texture(tissue_cfg.texture_bank, tissue_cfg.texture_px, rng)
    else:
        tex = tissuemod.make_texture(tissue_cfg, rng)
    faces, chunks = _chunk_faces(colon, vertices, faces)
    return MeshParts(vertices.astype(np.float32), normals.astype(np.float32), color,
                     faces.astype(np.uint32), chunks, tex)


def prepare(cfg, colons: Sequence) -> list[MeshParts]:
    """The GL-free parts of a :class:`FrameRenderer` for ``colons``: ``FrameRenderer(cfg, colons,
    prepared=prepare(cfg, colons))`` renders the same frames as ``FrameRenderer(cfg, colons)``."""
    return [mesh_parts(colon, cfg.tissue, k) for k, colon in enumerate(colons)]


def _mesh_for(parts: MeshParts, mesh_id: int):
    """A pyrender Mesh of one colon's :class:`MeshParts` (positions and normals in mm, fold factor
    in COLOR_0, tissue texture)."""
    from colonsim.render.backend import import_pyrender

    pyrender = import_pyrender()
    GLTF = pyrender.constants.GLTF

    sampler = pyrender.Sampler(magFilter=GLTF.LINEAR, minFilter=GLTF.LINEAR_MIPMAP_NEAREST,
                               wrapS=GLTF.REPEAT, wrapT=GLTF.REPEAT)
    material = pyrender.MetallicRoughnessMaterial(
        baseColorTexture=pyrender.Texture(source=parts.texture, source_channels="RGBA", sampler=sampler),
        doubleSided=True, alphaMode="OPAQUE")   # alpha is the bump channel, not opacity
    prim = pyrender.Primitive(positions=parts.positions, normals=parts.normals, color_0=parts.color,
                              indices=parts.faces, material=material, mode=GLTF.TRIANGLES)
    return pyrender.Mesh(primitives=[prim], name=f"colon{mesh_id}")


@dataclass
class PendingFrame:
    """A frame between :meth:`FrameRenderer.begin` and :meth:`FrameRenderer.finish`."""
    images: list                      # one (s, s, 4) float32 read-back per lens view
    pose: np.ndarray                  # (4, 4) float64 camera-to-world, mm
    params: dict                      # name -> float, all but the sensor's computed extras
    sensor: dict                      # the sensor parameters drawn
    rng_sensor: np.random.Generator   # the frame's sensor stream, after its parameters were drawn


class FrameRenderer:
    """Renders frames of the colons in ``colons`` with the optics, light, tissue and sensor of ``cfg``.

    Construct it inside the worker process; it creates (or reuses) that process's GL context.
    ``prepared``: the colons' :class:`MeshParts` from :func:`prepare`, if another process built
    them already (the frames are the same).
    """

    #: accepts ``prepared=`` (see :func:`prepare`)
    accepts_prepared = True

    def __init__(self, cfg, colons: Sequence, prepared: "Sequence[MeshParts] | None" = None):
        from colonsim.render.backend import get_renderer, import_pyrender

        pyrender = import_pyrender()  # sets PYOPENGL_PLATFORM before pyrender (and PyOpenGL) is first imported

        if not colons:
            raise InputError("FrameRenderer needs at least one colon mesh; got none")
        _keep_freed_memory()
        self.set_config(cfg)
        self.colons = list(colons)
        size = cfg.output.size_px
        self.lens = Lens(cfg.lens, size, size)
        self.remap = Remap(self.lens)
        self.mask = self.remap.mask
        self.intrinsics = self.lens.intrinsics()
        self.gl = get_renderer()
        self.scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.0, 0.0, 0.0])
        self.meshes = []
        self.chunks: list[Chunks] = []
        parts = list(prepared) if prepared is not None else prepare(cfg, self.colons)
        if len(parts) != len(self.colons):
            raise InputError(f"prepared parts for {len(parts)} colons, but {len(self.colons)} colons given")
        # COLONSIM_OCCLUSION=0 turns the occlusion test off (the frames are the same either way).
        self.occlusion = os.environ.get("COLONSIM_OCCLUSION", "1").strip() != "0"
        self._box_keys = []
        for k, part in enumerate(parts):
            mesh = _mesh_for(part, k)
            mesh.is_visible = False
            self.scene.add(mesh)
            self.meshes.append(mesh)
            self.chunks.append(part.chunks)
            key = None
            if part.chunks.corners is not None:
                tri = part.chunks.box_triangles()
                key = ("boxes", tri.shape, hashlib.sha1(tri.tobytes()).hexdigest())   # by content
                self.gl.renderer.add_boxes(key, tri)
            self._box_keys.append(key)
        self.has_polyps = [bool(part.color[:, 1].max(initial=0.0) > 0.5) for part in parts]
        view = self.remap.views[0]
        s = view.size_px   # pyrender's cx, cy are in window coordinates: pixel i spans [i, i + 1]
        camera = pyrender.IntrinsicsCamera(view.focal_px, view.focal_px, s / 2.0, s / 2.0,
                                           znear=cfg.lens.znear_mm, zfar=cfg.lens.zfar_mm)
        self.camera_node = self.scene.add(camera, pose=np.eye(4))
        # Pixels of the views that the lens remap never reads are masked out of the depth test.
        self._mask_keys = []
        for k, spans in enumerate(self.remap.row_spans()):
            key = ("view", spans.shape, hashlib.sha1(spans.tobytes()).hexdigest())   # by content
            self.gl.renderer.add_depth_mask(key, spans)
            self._mask_keys.append(key)

    def set_config(self, cfg) -> None:
        """Render with ``cfg`` from now on: its per-frame light, tissue, sensor and camera-path
        settings. The lens and the meshes' textures stay those that the renderer was made with."""
        self.cfg = cfg
        # The 2 mm clearance is checked inside a cone that must cover at least the lens's view.
        fov = min(max(cfg.trajectory.clearance_fov_deg, cfg.lens.fov_deg), 179.0)
        self._trajectory = dataclasses.replace(cfg.trajectory, clearance_fov_deg=fov)

    # ------------------------------------------------------------------ one frame

    def render(self, index: int, seed: int) -> Frame:
        """Frame ``index`` of the dataset with seed ``seed`` (a pure function of cfg, seed, index)."""
        return self.finish(self.begin(index, seed, keep=False))   # finished before the next draw

    def begin(self, index: int, seed: int, keep: bool = True) -> "PendingFrame":
        """The GL half of frame ``index``: draws its pose and parameters and rasterizes its views.
        :meth:`finish` does the rest (lens remap, sensor) and may run in another thread, so that a
        worker with cores to spare overlaps frame i's sensor model with frame i + 1's
        rasterization. GL calls stay in the thread that made the renderer. ``keep=False`` skips
        copying the read-back: only for a frame finished before the next GL render."""
        return self.collect(self.submit(index, seed), keep=keep)

    def submit(self, index: int, seed: int, slot: int = 0) -> "PendingFrame":
        """:meth:`begin` without the wait: draws frame ``index`` into framebuffer ``slot`` (0 or 1)
        and returns once the rasterizer has it; :meth:`collect` reads it back. Submitting frame
        i + 1 into the other slot before collecting frame i keeps the CPU rasterizer busy while
        this thread samples and draws the next pose (a lens with several views reads each back at
        once: they share a slot)."""
        cfg = self.cfg
        streams = np.random.SeedSequence([int(seed), int(index)]).spawn(len(STREAMS))
        _, rng_tissue, rng_light, rng_sensor = (np.random.default_rng(s) for s in streams)
        # A smooth sequence stays in one colon: the mesh is chosen per sequence, not per frame.
        mesh_id = (int(index) // cfg.trajectory.sequence_length) % len(self.colons)
        pose, traj_params = pose_for_frame(self.colons[mesh_id], self._trajectory, int(seed), int(index))
        tissue = tissuemod.sample_params(cfg.tissue, rng_tissue)
        light = lightmod.sample_params(cfg.light, rng_light)
        sensor = sensormod.sample_params(cfg.sensor, rng_sensor)
        images = self._render_views(mesh_id, pose, tissue, light, keep=True, slot=slot, defer=True)
        params = {"mesh_id": float(mesh_id)}
        for group in (traj_params, tissue, light, sensor):
            params.update({k: float(v) for k, v in group.items()})
        return PendingFrame(images, np.asarray(pose, np.float64), params, sensor, rng_sensor)

    def collect(self, p: "PendingFrame", keep: bool = True) -> "PendingFrame":
        """Read back the views of a frame from :meth:`submit` (waits for its rasterization).
        ``keep=False`` returns the slot's own buffer, which its next read overwrites: only for a
        frame finished before then."""
        images = []
        for img in p.images:
            if isinstance(img, tuple):   # a ticket of a deferred render
                w, h, _ = img
                img = self.gl.read(img, np.empty((h, w, 4), np.float32) if keep else None)
            images.append(img)
        return dataclasses.replace(p, images=images)

    def finish(self, p: "PendingFrame") -> Frame:
        """The rest of a frame from :meth:`begin`: lens remap and sensor model (no GL)."""
        linear, depth = self.remap.apply(p.images)
        extras: dict = {}
        rgb = sensormod.apply(linear, self.mask, p.sensor, self.cfg.sensor, p.rng_sensor, extras)
        params = dict(p.params)
        params.update({k: float(v) for k, v in extras.items()})
        return Frame(rgb=rgb, depth=depth, mask=self.mask, pose=p.pose.astype(np.float32),
                     intrinsics=self.intrinsics, params=params)

    def render_linear(self, mesh_id: int, pose: np.ndarray, tissue: dict, light: dict
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Render before the sensor: (h, w, 3) float32 linear radiance (vignetted, 0 outside the
        mask) and (h, w) float32 z-depth in mm, from camera-to-world ``pose`` (4, 4) mm."""
        return self.remap.apply(self._render_views(mesh_id, pose, tissue, light, keep=False))

    def _render_views(self, mesh_id: int, pose: np.ndarray, tissue: dict, light: dict, keep: bool,
                      slot: int = 0, defer: bool = False) -> list:
        """The read-back of every lens view (see GLRenderer.render); copies if ``keep`` (the GL
        buffer is reused by the next render). ``defer`` (one view only): a ticket for
        ``GLRenderer.read`` in place of the pixels."""
        defer = defer and len(self.remap.views) == 1
        for k, mesh in enumerate(self.meshes):
            mesh.is_visible = k == mesh_id
        pose = np.asarray(pose, np.float64)
        uniforms = self._uniforms(pose, tissue, light)
        images = []
        for view, mask_key in zip(self.remap.views, self._mask_keys):
            vpose = pose.copy()
            vpose[:3, :3] = pose[:3, :3] @ view.rotation
            self.scene.set_pose(self.camera_node, vpose)
            uniforms["u_cam_fwd"] = (-vpose[:3, 2]).astype(np.float32)
            chunks = self.chunks[mesh_id]
            znear = self.cfg.lens.znear_mm
            seen = chunks.visible(vpose, view.size_px / (2.0 * view.focal_px), znear, self.cfg.lens.zfar_mm)
            occlusion = None
            if (self.occlusion and self._box_keys[mesh_id] is not None and chunks.corners is not None
                    and len(seen) > OCCLUDE_NEAR):
                # A box that reaches the near plane is clipped and may miss pixels: its chunk is
                # drawn without a test.
                depth = -((chunks.corners[seen] - vpose[:3, 3]) @ vpose[:3, :3])[..., 2]
                testable = depth.min(axis=1) > znear + BOX_MARGIN_MM
                occlusion = (self._box_keys[mesh_id], seen, testable, OCCLUDE_NEAR)
            img = self.gl.render(self.scene, view.size_px, view.size_px, uniforms, chunks.ranges_of(seen),
                                 depth_mask=mask_key, slot=slot, defer=defer, occlusion=occlusion)
            images.append(img if defer else img.copy() if keep or len(self.remap.views) > 1 else img)
        return images

    def draw_pass(self, shaders: str, pose: np.ndarray, mesh_id: int, slot: int = 0) -> list[np.ndarray]:
        """One (s, s, 4) float32 read-back per lens view of colon ``mesh_id`` from camera-to-world
        ``pose``, drawn with the shaders of ``shaders/<shaders>`` (``normals``, ``polypmask``: see
        :meth:`colonsim.render.backend.GLRenderer.render_pass`) and the colour pass's geometry,
        culling and depth test, so the same pixels. In the thread that owns the GL context."""
        mesh_id = int(mesh_id)
        pose = np.asarray(pose, np.float64)
        for k, mesh in enumerate(self.meshes):
            mesh.is_visible = k == mesh_id
        chunks, znear = self.chunks[mesh_id], self.cfg.lens.znear_mm
        images = []
        for view, mask_key in zip(self.remap.views, self._mask_keys):
            vpose = pose.copy()
            vpose[:3, :3] = pose[:3, :3] @ view.rotation
            self.scene.set_pose(self.camera_node, vpose)
            seen = chunks.visible(vpose, view.size_px / (2.0 * view.focal_px), znear, self.cfg.lens.zfar_mm)
            occlusion = None
            if (self.occlusion and self._box_keys[mesh_id] is not None and chunks.corners is not None
                    and len(seen) > OCCLUDE_NEAR):
                depth = -((chunks.corners[seen] - vpose[:3, 3]) @ vpose[:3, :3])[..., 2]
                occlusion = (self._box_keys[mesh_id], seen, depth.min(axis=1) > znear + BOX_MARGIN_MM, OCCLUDE_NEAR)
            images.append(self.gl.render_pass(
                shaders, self.scene, view.size_px, view.size_px, {"u_cam_fwd": (-vpose[:3, 2]).astype(np.float32)},
                chunks.ranges_of(seen), depth_mask=mask_key, slot=slot, occlusion=occlusion).copy())
        return images

    def draw_polyp_mask(self, pose: np.ndarray, mesh_id: int, slot: int = 0) -> list | None:
        """The GL half of the polyp mask (:meth:`draw_pass` with ``polypmask``: r 1 on a polyp);
        None for a colon without polyps. :meth:`finish_polyp_mask` does the rest."""
        if not self.has_polyps[int(mesh_id)]:
            return None
        return self.draw_pass("polypmask", pose, mesh_id, slot)

    def finish_polyp_mask(self, images: list | None) -> np.ndarray:
        """(h, w) uint8 polyp mask of :meth:`draw_polyp_mask`'s read-backs through the lens
        (nearest sampling): 1 where the visible surface is a polyp's. No GL."""
        if images is None:
            return np.zeros(self.mask.shape, np.uint8)
        return self.remap.apply_label(images)

    def render_polyp_mask(self, pose: np.ndarray, mesh_id: int, slot: int = 0) -> np.ndarray:
        """:meth:`draw_polyp_mask` then :meth:`finish_polyp_mask`."""
        return self.finish_polyp_mask(self.draw_polyp_mask(pose, mesh_id, slot))

    def _uniforms(self, pose: np.ndarray, tissue: dict, light: dict) -> dict:
        cfg = self.cfg
        guides = lightmod.guide_positions(cfg.light, light) @ pose[:3, :3].T + pose[:3, 3]
        u = {
            "u_n_lights": int(cfg.light.n_guides),
            "u_light_scale": float(lightmod.per_guide_scale(cfg.light, light)),
            "u_mu": float(light["light_mu"]),
            "u_ambient": float(light["light_ambient"]),
            "u_ambient_tint": float(light["light_ambient_tint"]),
            "u_ambient_falloff": float(cfg.light.ambient_falloff_mm),
            "u_albedo": np.float32([tissue["tissue_albedo_r"], tissue["tissue_albedo_g"],
                                    tissue["tissue_albedo_b"]]),
            "u_mottling": float(tissue["tissue_mottling"]),
            "u_vessel": float(tissue["tissue_vessel_contrast"]),
            "u_grain": float(tissue["tissue_grain"]),
            "u_period_mm": float(tissue["tissue_period_mm"]),
            "u_specular": float(tissue["tissue_specular"]),
            "u_roughness": float(tissue["tissue_roughness"]),
            "u_fold": float(tissue["tissue_fold_contrast"]),
            "u_bump": float(tissue["tissue_bump"]),
            "u_wrap": float(tissue["tissue_subsurface"]),
            "u_bank": int(cfg.tissue.texture_bank is not None),
        }
        for g, p in enumerate(guides):
            u[f"u_light_pos[{g}]"] = p.astype(np.float32)
        return u

    def close(self) -> None:
        """Drop this renderer's scene. Its GL buffers are freed when the process's renderer next draws
        another scene (pyrender's context update), or with the context at process exit."""
        self.scene = None
        self.meshes = []
