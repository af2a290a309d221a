# ruff: noqa: I001  (PYOPENGL_PLATFORM is set before pyrender is imported)
"""Draws docs/img/anatomy_*.png: the default procedural colon beside the CT colon (Gut Cell Atlas 00020).
Run from the repository root: python docs/make_anatomy_images.py (needs ../shared/data)."""
import os

os.environ["PYOPENGL_PLATFORM"] = "egl"
import numpy as np, trimesh, pyrender  # noqa: I001,E401 (after PYOPENGL_PLATFORM)
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
from colonsim.anatomy.colon import generate_colon, load_anatomy_config
from colonsim.anatomy.meshio import load_colon
from colonsim.anatomy.measure import resample

D = str(__import__('pathlib').Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'meshes' / 'gca-edin-00020')
proc = generate_colon(load_anatomy_config(), seed=0)
ct = load_colon(D, scale="0.808594,0.808594,0.7", centerline=D+'/Paths_large_intestine_path.jsn')

def outside(colon, view_axis, up, size=(700, 700)):
    m = colon.mesh
    outer = trimesh.Trimesh(m.vertices, m.faces[:, ::-1], process=False)  # outward faces for an outside view
    c = m.bounds.mean(0); ext = (m.bounds[1]-m.bounds[0]).max()
    scene = pyrender.Scene(bg_color=[1, 1, 1, 1], ambient_light=[0.25]*3)
    scene.add(pyrender.Mesh.from_trimesh(outer, material=pyrender.MetallicRoughnessMaterial(baseColorFactor=[0.85, 0.55, 0.5, 1], roughnessFactor=0.7), smooth=False))
    z = np.asarray(view_axis, float); z /= np.linalg.norm(z); x = np.cross(up, z); x /= np.linalg.norm(x); y = np.cross(z, x)
    pose = np.eye(4); pose[:3, :3] = np.stack([x, y, z], 1); pose[:3, 3] = c + z * ext * 2
    scene.add(pyrender.OrthographicCamera(xmag=ext*0.55, ymag=ext*0.55, znear=1, zfar=ext*5), pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)
    r = pyrender.OffscreenRenderer(*size); img, _ = r.render(scene); r.delete(); return img

def inside(colon, at_mm, size=(400, 400)):
    line = resample(colon.centerline, 1.0); i = int(at_mm)
    p, t = line.points_mm[i], line.tangents[i]
    z = -t; up = np.array([0, 0, 1.0]) if abs(t[2]) < 0.9 else np.array([1.0, 0, 0])
    x = np.cross(up, z); x /= np.linalg.norm(x); y = np.cross(z, x)
    pose = np.eye(4); pose[:3, :3] = np.stack([x, y, z], 1); pose[:3, 3] = p
    scene = pyrender.Scene(bg_color=[0, 0, 0, 1], ambient_light=[0.02]*3)
    scene.add(pyrender.Mesh.from_trimesh(colon.mesh, material=pyrender.MetallicRoughnessMaterial(baseColorFactor=[0.9, 0.55, 0.5, 1], roughnessFactor=0.6)))
    scene.add(pyrender.PerspectiveCamera(yfov=np.deg2rad(110), znear=1, zfar=500), pose=pose)
    scene.add(pyrender.PointLight(intensity=600.0, range=500), pose=pose)
    r = pyrender.OffscreenRenderer(*size); img, _ = r.render(scene); r.delete(); return img

for name, colon, views in (("procedural", proc, [1000, 450]), ("ct", ct, [1900, 1200])):
    plt.imsave(f"docs/img/anatomy_{name}_outside.png", outside(colon, [0, 1, 0], [0, 0, 1]))
    ins = [inside(colon, a) for a in views]
    plt.imsave(f"docs/img/anatomy_{name}_inside.png", np.concatenate(ins, 1))
print("ok")
