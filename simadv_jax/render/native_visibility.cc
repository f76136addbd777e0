// Nearest-triangle visibility on the CPU, as an XLA FFI custom call (`simadv_jax.render.native`).
//
// Computes what `simadv_jax.render.rasterize._visible_triangles` computes, with the same float32 operations
// (built with -ffp-contract=off, so no fused multiply-adds): per pixel centre, the triangle with the smallest
// key (depth quantized over the image's rasterized depth range) << id_bits | id among the triangles whose
// closed interior holds the centre and whose depth there is in [-1, 1]. A plain loop over each triangle's
// bounding box replaces the vectorized work-item list. XLA may order or fuse its float operations
// differently, so the two can disagree where two surfaces are within rounding of one depth level apart.

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// First pixel-centre index and count of the centres in [lo, hi], clipped to [0, size).
inline void Span(float lo, float hi, int64_t size, int32_t* first, int32_t* count) {
  const float limit = static_cast<float>(size) + 2.0f;
  lo = std::min(std::max(lo, -2.0f), limit);
  hi = std::min(std::max(hi, -2.0f), limit);
  const int32_t start = std::max(static_cast<int32_t>(std::ceil(lo - 0.5f)), 0);
  const int32_t last = std::min(static_cast<int32_t>(std::floor(hi - 0.5f)), static_cast<int32_t>(size - 1));
  *first = start;
  *count = last - start + 1;
}

// A triangle that produces fragments: its index and pixel-centre bounding box.
struct Rasterized {
  int32_t id, col0, ncols, row0, nrows;
};

void OneImage(const float* x, const float* y, const float* z, const bool* in_front, int64_t num_faces,
              int64_t height, int64_t width, bool cull_backfaces, int32_t* ids, std::vector<int32_t>& keys,
              std::vector<Rasterized>& rasterized) {
  int id_bits = 1;
  while ((int64_t{1} << id_bits) <= num_faces) ++id_bits;
  const float depth_levels = static_cast<float>((int64_t{1} << (31 - id_bits)) - 1);
  const int64_t npix = height * width;
  keys.assign(npix, INT32_MAX);
  rasterized.clear();

  // Pass 1: which triangles are rasterized, and the depth range they span.
  float z_min = 1.0f, z_max = -1.0f;
  for (int64_t t = 0; t < num_faces; ++t) {
    if (!in_front[t]) continue;
    const float* tx = x + 3 * t;
    const float* ty = y + 3 * t;
    const float* tz = z + 3 * t;
    const float area = (tx[1] - tx[0]) * (ty[2] - ty[0]) - (tx[2] - tx[0]) * (ty[1] - ty[0]);
    if (!(area < 0.0f || (!cull_backfaces && area > 0.0f))) continue;  // also drops NaN areas
    bool finite = true;
    for (int k = 0; k < 3; ++k) finite = finite && std::isfinite(tx[k]) && std::isfinite(ty[k]) && std::isfinite(tz[k]);
    if (!finite) continue;
    Rasterized r{static_cast<int32_t>(t), 0, 0, 0, 0};
    Span(std::min({tx[0], tx[1], tx[2]}), std::max({tx[0], tx[1], tx[2]}), width, &r.col0, &r.ncols);
    Span(std::min({ty[0], ty[1], ty[2]}), std::max({ty[0], ty[1], ty[2]}), height, &r.row0, &r.nrows);
    if (r.ncols <= 0 || r.nrows <= 0) continue;
    rasterized.push_back(r);
    for (int k = 0; k < 3; ++k) {
      const float clipped = std::min(std::max(tz[k], -1.0f), 1.0f);
      z_min = std::min(z_min, clipped);
      z_max = std::max(z_max, clipped);
    }
  }
  const float z_scale = depth_levels / std::max(z_max - z_min, 1e-30f);

  // Pass 2: depth test every pixel centre of every rasterized triangle's bounding box.
  for (const Rasterized& r : rasterized) {
    const float* tx = x + 3 * r.id;
    const float* ty = y + 3 * r.id;
    const float* tz = z + 3 * r.id;
    const float area = (tx[1] - tx[0]) * (ty[2] - ty[0]) - (tx[2] - tx[0]) * (ty[1] - ty[0]);
    const float sign = area > 0.0f ? 1.0f : -1.0f;
    const float abs_area = std::fabs(area);
    for (int32_t row = r.row0; row < r.row0 + r.nrows; ++row) {
      const float py = static_cast<float>(row) + 0.5f;
      const float dy0 = ty[0] - py, dy1 = ty[1] - py, dy2 = ty[2] - py;
      int32_t* slots = keys.data() + row * width;
      for (int32_t col = r.col0; col < r.col0 + r.ncols; ++col) {
        const float px = static_cast<float>(col) + 0.5f;
        const float dx0 = tx[0] - px, dx1 = tx[1] - px, dx2 = tx[2] - px;
        const float e0 = (dx1 * dy2 - dx2 * dy1) * sign;
        const float e1 = (dx2 * dy0 - dx0 * dy2) * sign;
        const float e2 = (dx0 * dy1 - dx1 * dy0) * sign;
        if (!(e0 >= 0.0f && e1 >= 0.0f && e2 >= 0.0f)) continue;
        const float depth = (e0 * tz[0] + e1 * tz[1] + e2 * tz[2]) / abs_area;
        if (!(depth >= -1.0f && depth <= 1.0f)) continue;
        const float level = std::min(std::max((depth - z_min) * z_scale, 0.0f), depth_levels);
        slots[col] = std::min(slots[col], (static_cast<int32_t>(level) << id_bits) | r.id);
      }
    }
  }
  const int32_t id_mask = static_cast<int32_t>((int64_t{1} << id_bits) - 1);
  for (int64_t p = 0; p < npix; ++p) ids[p] = keys[p] == INT32_MAX ? -1 : (keys[p] & id_mask);
}

ffi::Error Visibility(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> z,
                      ffi::Buffer<ffi::PRED> in_front, ffi::ResultBuffer<ffi::S32> ids, int64_t height,
                      int64_t width, int64_t cull_backfaces) {
  const auto dims = x.dimensions();
  if (dims.size() < 2 || dims.back() != 3) {
    return ffi::Error::InvalidArgument("simadv_visibility: corner arrays must have shape (..., F, 3)");
  }
  const int64_t num_faces = dims[dims.size() - 2];
  const int64_t corners = num_faces * 3;
  const int64_t npix = height * width;
  const int64_t batch = corners == 0 ? 0 : static_cast<int64_t>(x.element_count()) / corners;
  if (y.element_count() != x.element_count() || z.element_count() != x.element_count() ||
      static_cast<int64_t>(in_front.element_count()) != batch * num_faces ||
      static_cast<int64_t>(ids->element_count()) != batch * npix) {
    return ffi::Error::InvalidArgument("simadv_visibility: inconsistent input or output sizes");
  }
  std::vector<int32_t> keys;
  std::vector<Rasterized> rasterized;
  for (int64_t b = 0; b < batch; ++b) {
    OneImage(x.typed_data() + b * corners, y.typed_data() + b * corners, z.typed_data() + b * corners,
             in_front.typed_data() + b * num_faces, num_faces, height, width, cull_backfaces != 0,
             ids->typed_data() + b * npix, keys, rasterized);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SimadvVisibility, Visibility,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Attr<int64_t>("height")
                                  .Attr<int64_t>("width")
                                  .Attr<int64_t>("cull_backfaces"));
