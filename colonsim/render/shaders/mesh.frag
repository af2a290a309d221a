#version 330 core
// ColonSim fragment shader: light guides at the scope tip, Lambertian mucosa with a triplanar
// tissue texture, and a GGX specular lobe for the wet film.
//
// Output (to an RGBA32F framebuffer): rgb = linear radiance; a = 1 / z-depth (1/mm) of the
// fragment along the camera axis, so that depth is read back exactly (and 0 means no surface).
//
// Light guide g at position L_g emits exp(-mu (1 - cos theta)) around the camera axis
// (Batlle, Montiel, Tardos 2022, IROS), with inverse-square falloff:
//   E_g = scale * exp(-mu (1 - cos theta)) * max(0, n.l) / d^2
// The numpy reference of the diffuse term is colonsim.light.irradiance.

in vec3 frag_position;
in vec3 frag_normal;
in float frag_fold;
out vec4 frag_color;

struct Material {
    sampler2D base_color_texture;
};
uniform Material material;

uniform vec3 cam_pos;          // set by pyrender: camera centre, world mm
uniform vec3 u_cam_fwd;        // camera viewing direction (unit), world
uniform vec3 u_light_pos[3];   // light guide positions, world mm
uniform int u_n_lights;
uniform float u_light_scale;   // per-guide radiance scale (intensity * ref^2 / n)
uniform float u_mu;            // angular emission exponent
uniform float u_ambient;       // ambient radiance
uniform float u_ambient_tint;  // 0: white stray light; 1: coloured like the mucosa it bounced off
uniform float u_ambient_falloff;  // mm; > 0: ambient / (1 + (d / this)^2) at distance d from the tip
uniform vec3 u_albedo;         // mucosa base albedo, linear
uniform float u_mottling;
uniform float u_vessel;
uniform float u_grain;
uniform float u_period_mm;
uniform float u_specular;
uniform float u_roughness;
uniform float u_fold;
uniform float u_bump;         // normal jitter of the wet surface (small scattered highlights)
uniform float u_wrap;         // subsurface scattering: the diffuse term is max(0, (n.l + w) / (1 + w))
uniform int u_bank;           // 1: the texture is from a bank of real patches (colonsim.render.texbank)

vec4 triplanar(vec3 p, vec3 n)
{
    // Three bilinear lookups from the nearest mip level: on Mesa llvmpipe each trilinear lookup
    // costs about as much as the whole lighting, so the texture is sampled once per fragment and
    // its four channels serve the albedo and the bumps.
    vec3 w = n * n;
    w *= w;
    w /= (w.x + w.y + w.z);
    vec3 q = p / u_period_mm;
    return w.x * texture(material.base_color_texture, q.yz)
         + w.y * texture(material.base_color_texture, q.xz)
         + w.z * texture(material.base_color_texture, q.xy);
}

void main()
{
    vec3 n = normalize(frag_normal);
    vec3 v = cam_pos - frag_position;
    float z = dot(-v, u_cam_fwd);
    float dist = length(v);
    v = normalize(v);
    if (dot(n, v) < 0.0) n = -n;   // two-sided: shade the side that faces the camera

    // r: vessels, g: mottling, b: grain, a: bumps (colonsim.tissue.make_texture); with a bank,
    // rgb: albedo relative to its mean, halved, a: bumps (colonsim.render.texbank)
    vec4 t = triplanar(frag_position, n);
    vec3 albedo = u_albedo;
    vec2 j;
    if (u_bank != 0) {
        albedo *= 2.0 * t.rgb;
        j = vec2(2.0 * t.a - 1.0, 1.0 - 2.0 * t.a);
    } else {
        albedo *= (1.0 + u_mottling * (2.0 * t.g - 1.0)) * (1.0 + u_grain * (2.0 * t.b - 1.0));
        albedo *= mix(vec3(1.0), vec3(0.70, 0.22, 0.28), u_vessel * t.r);
        j = 2.0 * t.ab - 1.0;   // bumps and grain: fine, zero-mean
    }
    albedo *= 1.0 + u_fold * frag_fold * vec3(0.15, 0.45, 0.40);
    albedo = clamp(albedo, 0.0, 1.0);
    // Small bumps of the mucosa: jitter the normal (no-op when u_bump = 0).
    n = normalize(n + u_bump * vec3(j, 2.0 * j.x * j.y));

    float a2 = u_roughness * u_roughness;
    a2 *= a2;
    float amb = u_ambient;
    if (u_ambient_falloff > 0.0) amb /= 1.0 + (dist / u_ambient_falloff) * (dist / u_ambient_falloff);
    // Stray light has bounced off the mucosa: tinted by its colour (same luminance), u_ambient_tint of it.
    vec3 tint = mix(vec3(1.0), albedo / max(dot(albedo, vec3(0.2126, 0.7152, 0.0722)), 1e-3), u_ambient_tint);
    vec3 radiance = amb * albedo * tint;
    for (int g = 0; g < u_n_lights; ++g) {
        vec3 l = u_light_pos[g] - frag_position;
        float d2 = dot(l, l);
        l *= inversesqrt(d2);
        float cos_emit = dot(-l, u_cam_fwd);
        float e = u_light_scale * exp(-u_mu * (1.0 - cos_emit)) / d2;
        float nl = max(dot(n, l), 0.0);
        // Wrapped diffuse: light scattered under the mucosa reaches the surface past its terminator,
        // so a fold's rim, seen at grazing angle, is not a black line (w = 0: Lambert, exactly).
        float nl_diffuse = u_wrap > 0.0 ? max((dot(n, l) + u_wrap) / (1.0 + u_wrap), 0.0) : nl;
        radiance += albedo * (e * nl_diffuse);
        if (u_specular > 0.0 && nl > 0.0) {
            vec3 h = normalize(l + v);
            float nh = max(dot(n, h), 0.0);
            float den = nh * nh * (a2 - 1.0) + 1.0;
            float D = a2 / (3.14159265 * den * den);
            radiance += vec3(u_specular * 0.25 * D * nl / max(dot(n, v), 0.1) * e);
        }
    }
    frag_color = vec4(radiance, 1.0 / max(z, 1e-6));
}
