#version 330 core
// ColonSim normals pass (colonsim/render/flow.py, GLRenderer.render_normals): the same geometry
// and depth test as the colour pass, writing the unit surface normal in the view's camera frame
// (OpenGL axes), turned to face the camera, to rgb and 1 / z-depth (1/mm) to alpha.

in vec3 frag_position;
in vec3 frag_normal;
in float frag_fold;
out vec4 frag_color;

struct Material {
    sampler2D base_color_texture;
};
uniform Material material;   // bound by the renderer; read with weight 0 so that it stays declared

uniform vec3 cam_pos;        // set by pyrender: camera centre, world mm
uniform vec3 u_cam_fwd;      // camera viewing direction (unit), world
uniform mat4 V;              // world -> view

void main()
{
    vec3 v = frag_position - cam_pos;
    float z = dot(v, u_cam_fwd);
    vec3 n = normalize(frag_normal);
    if (dot(n, v) > 0.0) {
        n = -n;              // the mesh is two-sided: the normal faces the camera
    }
    vec3 nv = mat3(V) * n;
    float keep = 0.0 * texture(material.base_color_texture, vec2(0.5)).r + 0.0 * frag_fold;
    frag_color = vec4(nv + keep, 1.0 / max(z, 1e-6));
}
