#version 330 core
// ColonSim vertex shader of the normals pass (a copy of ../mesh.vert; colonsim/render/flow.py).
// pyrender fills the attribute locations through the *_LOC defines.
layout(location = 0) in vec3 position;
#ifdef NORMAL_LOC
layout(location = NORMAL_LOC) in vec3 normal;
#endif
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 frag_position;   // world position, mm
out vec3 frag_normal;     // world normal (unit after interpolation + normalize)
out float frag_fold;      // fold factor in [-1, 1] (colonsim.tissue.fold_factor)

void main()
{
    mat4 model = M * inst_m;
    vec4 world = model * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
#ifdef NORMAL_LOC
    // Colon meshes are placed rigidly (ColonSim adds them with the identity pose), so the normal
    // matrix is the rotation itself: no per-vertex inverse (3% of a frame on llvmpipe).
    frag_normal = mat3(model) * normal;
#else
    frag_normal = vec3(0.0, 0.0, 1.0);
#endif
#ifdef COLOR_0_LOC
    frag_fold = 2.0 * color_0.r - 1.0;
#else
    frag_fold = 0.0;
#endif
}
