#version 330 core
// ColonSim polyp mask pass (GLRenderer.render_polyp_mask): the same geometry and depth test as
// the colour pass, writing the polyp flag of the visible surface to r and 1 / z-depth (1/mm) to
// alpha, so that the lens remap treats it like the colour pass's read-back.

in vec3 frag_position;
flat in float frag_polyp;
out vec4 frag_color;

struct Material {
    sampler2D base_color_texture;
};
uniform Material material;   // bound by the renderer; read with weight 0 so that it stays declared

uniform vec3 cam_pos;        // set by pyrender: camera centre, world mm
uniform vec3 u_cam_fwd;      // camera viewing direction (unit), world

void main()
{
    float z = dot(frag_position - cam_pos, u_cam_fwd);
    float keep = 0.0 * texture(material.base_color_texture, vec2(0.5)).r;
    frag_color = vec4(frag_polyp + keep, 0.0, 0.0, 1.0 / max(z, 1e-6));
}
