"""The forward model of an endoscope: lens, lights at the tip, wet tissue, sensor, camera paths,
and the OpenGL backend (pyrender; EGL or OSMesa) that draws a frame with its exact depth.

Only :mod:`colonsim.render.backend` imports pyrender/OpenGL, and only when a frame is drawn."""
