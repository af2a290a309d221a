#version 330 core
// ColonSim vertex shader of the polyp mask pass (GLRenderer.render_polyp_mask): positions only,
// and the per-vertex polyp flag of COLOR_0's g channel (colonsim/render/scene.py mesh_parts).
layout(location = 0) in vec3 position;
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 frag_position;   // world position, mm
flat out float frag_polyp; // 1 on a polyp's triangles (all three vertices are the polyp's), 0 on the wall

void main()
{
    mat4 model = M * inst_m;
    vec4 world = model * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
#ifdef COLOR_0_LOC
    frag_polyp = color_0.g;
#else
    frag_polyp = 0.0;
#endif
}
