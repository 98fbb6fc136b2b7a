// Dispatcher of the IWAE kernels (see iwae.hpp): repacks the parameters,
// sizes the scratch, spreads members (and row blocks) over OpenMP threads
// and picks the instruction-set build of the hot loops.
#include "iwae.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "iwae_plan.hpp"

#include "openmp_info.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace iwae {

using detail::Dims;
using detail::Layer;
using detail::LayerGrad;
using detail::Net;
using detail::NetGrad;
using detail::Norm;
using detail::kPanel;
using detail::padded;
using detail::panel_offset;
using detail::panel_width;

namespace {

// Tests switch this off to compare both builds of the hot loops.
bool avx2_allowed = true;

bool use_avx2() {
#ifdef IWAE_HAVE_AVX2_BUILD
  static const bool has =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has && avx2_allowed;
#else
  return false;
#endif
}

#ifdef IWAE_HAVE_AMX_BUILD
// XCR0, the register state the operating system saves (xgetbv 0).
std::uint64_t xcr0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

bool detect_amx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool avx512f = b & (1u << 16);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  const bool avx512_bf16 = a1 & (1u << 5);
  if (!(avx512f && amx_bf16 && amx_tile && avx512_bf16)) return false;
  // SSE, AVX, AVX-512 (opmask, ZMM halves) and the tile config and data.
  const std::uint64_t need = 0x6 | 0xe0 | (1ull << 17) | (1ull << 18);
  if ((xcr0() & need) != need) return false;
#if defined(__linux__)
  // Linux hands out the tile data state only on request, once per process.
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
#endif
  return true;
}
#endif

bool use_amx() {
#ifdef IWAE_HAVE_AMX_BUILD
  static const bool has = detect_amx();
  return has;
#else
  return false;
#endif
}

bool avx512_allowed = true;

// The AMX build (compiled for AVX-512 too) also serves float32 work where
// it may run.
bool use_avx512() { return use_avx2() && avx512_allowed && use_amx(); }

void score_block(const Dims& dims, const Net& net, const float* x,
                 std::size_t rows, const float* eps, const float* eps_sq,
                 std::size_t samples, std::size_t tile, float* work,
                 double* out) {
#ifdef IWAE_HAVE_AMX_BUILD
  // The AMX build's float32 path: the AVX2 build's arithmetic lane for lane
  // (the likelihood and the products in 16-float packs, the sums in the
  // 8-float packs' order), so the same bits, faster.
  if (dims.bf16 || use_avx512()) {
    detail::kernel_amx::score_block(dims, net, x, rows, eps, eps_sq, samples, tile, work, out);
    return;
  }
#endif
#ifdef IWAE_HAVE_AVX2_BUILD
  if (use_avx2()) {
    detail::kernel_avx2::score_block(dims, net, x, rows, eps, eps_sq, samples,
                                     tile, work, out);
    return;
  }
#endif
  detail::kernel_generic::score_block(dims, net, x, rows, eps, eps_sq, samples,
                                      tile, work, out);
}

void contrib_block(const Dims& dims, const Net& net, const float* x,
                   std::size_t rows, const float* eps, const float* eps_sq,
                   std::size_t samples, std::size_t tile, float* work,
                   float* c_out, double* r_out) {
#ifdef IWAE_HAVE_AMX_BUILD
  if (dims.bf16 || use_avx512()) {  // as in score_block
    detail::kernel_amx::contrib_block(dims, net, x, rows, eps, eps_sq, samples, tile, work,
                                      c_out, r_out);
    return;
  }
#endif
#ifdef IWAE_HAVE_AVX2_BUILD
  if (use_avx2()) {
    detail::kernel_avx2::contrib_block(dims, net, x, rows, eps, eps_sq, samples,
                                       tile, work, c_out, r_out);
    return;
  }
#endif
  detail::kernel_generic::contrib_block(dims, net, x, rows, eps, eps_sq, samples,
                                        tile, work, c_out, r_out);
}

double train_update(const Dims& dims, const Net& net,
                    const detail::PassInput& in, const detail::PassInput* labeled,
                    const NetGrad& grad, float* work) {
#ifdef IWAE_HAVE_AMX_BUILD
  // bfloat16 products, or float32 as in score_block.
  if (dims.bf16 || use_avx512()) {
    return detail::kernel_amx::train_update(dims, net, in, labeled, grad, work);
  }
#endif
#ifdef IWAE_HAVE_AVX2_BUILD
  if (use_avx2()) {
    return detail::kernel_avx2::train_update(dims, net, in, labeled, grad, work);
  }
#endif
  return detail::kernel_generic::train_update(dims, net, in, labeled, grad, work);
}

int resolve_threads(int requested) {
  return requested > 0 && openmp_enabled() ? requested : default_threads();
}

// Where each logical output column of a layer lives in its padded block:
// a two-part layer (halves of `half` columns) keeps each half at the start
// of its own padded run.
struct ColumnMap {
  std::size_t out;   // logical columns
  std::size_t half;  // 0 for a one-part layer
  std::size_t to_padded(std::size_t c) const {
    return half && c >= half ? padded(half) + (c - half) : c;
  }
  std::size_t ld() const { return half ? 2 * padded(half) : padded(out); }
};

// dst (cm.out) = the logical columns of one padded row src (cm.ld()).
void copy_logical_columns(const ColumnMap& cm, const float* src, float* dst) {
  if (!cm.half) {
    std::memcpy(dst, src, cm.out * sizeof(float));
    return;
  }
  std::memcpy(dst, src, cm.half * sizeof(float));
  std::memcpy(dst + cm.half, src + padded(cm.half), (cm.out - cm.half) * sizeof(float));
}

// Blocks of packed weights and scratch: hundreds of MB at 26,147 features.
// From 2 MB up they come in the kernel's 2 MB pages where it has them
// (Linux, transparent huge pages on request): in 4 KB pages, packing a
// 26,147-feature ensemble for one scoring call took 74,000 page faults,
// half the call's time on a few rows. Left uninitialized, like new T[].
struct FreeBlock {
  void operator()(void* p) const { std::free(p); }
};
template <class T>
using LargeBlock = std::unique_ptr<T[], FreeBlock>;

template <class T>
LargeBlock<T> large_block(std::size_t count) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  std::size_t bytes = std::max<std::size_t>(count * sizeof(T), 64);
  void* p = nullptr;
#if defined(__linux__)
  if (bytes >= kHugePage) {
    bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    p = std::aligned_alloc(kHugePage, bytes);
#if defined(MADV_HUGEPAGE)
    if (p) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without it, 4 KB pages
#endif
  }
#endif
  if (!p) p = std::malloc(bytes);
  if (!p) throw std::bad_alloc();
  return LargeBlock<T>(static_cast<T*>(p));
}

// The bfloat16 weights of a training update, kept by the calling thread from
// one update to the next (a fresh block would fault its pages in every
// update); release_scratch frees them.
struct WeightCache {
  LargeBlock<std::uint16_t> block;
  std::size_t values = 0;
};
thread_local WeightCache training_weights16;

std::uint16_t* cached_weights16(std::size_t values) {
  if (training_weights16.values < values) {
    training_weights16.block.reset();
    training_weights16.block = large_block<std::uint16_t>(values);
    training_weights16.values = values;
  }
  return training_weights16.block.get();
}

// Features above which a bfloat16 training pass runs its output layer with
// the likelihood, by feature blocks (iwae_amx.inc). There a member's output
// block (a mean and a log-variance per feature for each of its decoder
// rows) is far larger than the caches, and the blocks keep it there;
// below, the plain product then the likelihood measured faster (rectified
// updates, one thread: 9.9 against 11.4 ms at 512 features, 38 against 46
// at 2,048, 86 against 104 at 4,096; 218 against 210 ms at 8,192, 0.78
// against 0.68 s at 26,147; a 1,000-feature Gaussian update 17.3 against
// 21.9 ms).
constexpr std::size_t kBlockedTrainingFeatures = 6144;

// The layers of every member, repacked (and, for scoring, with batch
// normalization folded in), in one block of floats.
class PackedEnsemble {
 public:
  // bf16_weights (bfloat16 products, the AMX build only) also rounds every
  // layer's weights to bfloat16 for the tiles (Layer::w16); with transposes
  // (training) the transposes too (Layer::wt16), both straight from
  // PyTorch's layout, and the float32 panels are left out. blocked_output
  // (scoring with bfloat16 products) gives a two-part output layer
  // Layer::w16_blocks instead of its w16.
  PackedEnsemble(const Shape& shape, const Params& params, bool fold_norms,
                 bool transposes, bool bf16_weights = false, bool blocked_output = false)
      : shape_(shape) {
    check(shape, params);
    dims_ = make_dims(shape);
    n_enc_layers_ = shape.enc_hidden.size() + 1;
    n_dec_layers_ = shape.dec_hidden.size() + 1;
    const std::size_t per_member = n_enc_layers_ + n_dec_layers_;
    const std::size_t m_count = shape.n_members;
    layers_.resize(m_count * per_member);
    maps_.resize(per_member);
    offsets_.resize(m_count * per_member);

    // First pass: sizes and offsets; second: copy.
    const bool panels = !(bf16_weights && transposes);
    const bool blocked_scores = bf16_weights && !transposes && blocked_output &&
                                shape.likelihood != Likelihood::kBernoulli;
    // A blocked output layer is packed straight from PyTorch's layout
    // (pack_bf16_weights): its float32 panel would go unread.
    const auto has_panel = [&](std::size_t li) {
      return panels && !(blocked_scores && li + 1 == per_member);
    };
    std::size_t total = 0;
    for (std::size_t li = 0; li < per_member; ++li) maps_[li] = column_map(li);
    for (std::size_t m = 0; m < m_count; ++m) {
      for (std::size_t li = 0; li < per_member; ++li) {
        const std::size_t in = layer_in(li);
        const std::size_t ld = maps_[li].ld();
        Offsets& o = offsets_[m * per_member + li];
        o.w = total;
        if (has_panel(li)) total += round16(in * ld);
        o.b = total;
        total += round16(ld);
        o.wt = total;
        if (panels && transposes && has_transpose(li)) total += round16(ld * padded(in));
      }
    }
    // Left uninitialized: pack_layer writes every element a kernel reads.
    store_ = large_block<float>(total);
    for (std::size_t m = 0; m < m_count; ++m) {
      for (std::size_t li = 0; li < per_member; ++li) {
        pack_layer(params, m, li, fold_norms, transposes, has_panel(li));
      }
    }
    if (shape.batch_norm && !fold_norms) {
      const std::size_t n_hidden = shape.enc_hidden.size() + shape.dec_hidden.size();
      norms_.resize(m_count * n_hidden);
      for (std::size_t m = 0; m < m_count; ++m) {
        for (std::size_t h = 0; h < n_hidden; ++h) {
          const std::size_t width = hidden_width(h);
          norms_[m * n_hidden + h] = Norm{params.bn_mean[h] + m * width,
                                          params.bn_var[h] + m * width, width};
        }
      }
    }
    dims_.batch_norm = shape.batch_norm && !fold_norms;
    if (bf16_weights && !panels) {
      pack_bf16_training(params);
    } else if (bf16_weights) {
      pack_bf16_weights(params, blocked_scores);
    }
    nets_.resize(m_count);
    for (std::size_t m = 0; m < m_count; ++m) {
      Layer* base = layers_.data() + m * per_member;
      const std::size_t n_hidden = shape.enc_hidden.size() + shape.dec_hidden.size();
      nets_[m] = Net{base, base + n_enc_layers_,
                     norms_.empty() ? nullptr : norms_.data() + m * n_hidden};
    }
  }

  const Dims& dims() const { return dims_; }
  const Net& net(std::size_t m) const { return nets_[m]; }
  std::size_t layers_per_member() const { return n_enc_layers_ + n_dec_layers_; }
  const ColumnMap& map(std::size_t li) const { return maps_[li]; }
  std::size_t layer_in(std::size_t li) const {
    if (li < n_enc_layers_) {
      return li == 0 ? shape_.n_features : shape_.enc_hidden[li - 1];
    }
    const std::size_t j = li - n_enc_layers_;
    return j == 0 ? shape_.latent : shape_.dec_hidden[j - 1];
  }

 private:
  struct Offsets {
    std::size_t w, b, wt;
  };

  static std::size_t round16(std::size_t n) { return (n + 15) / 16 * 16; }

  // Whether training needs layer li's transpose (for its input gradient):
  // the first layer's input is x, which takes no gradient (at 26,147
  // features its transpose was a third of the transposes packed per update).
  static bool has_transpose(std::size_t li) { return li != 0; }

  static void check(const Shape& s, const Params& p) {
    if (s.n_members == 0 || s.n_features == 0 || s.latent == 0) {
      throw std::invalid_argument("empty network");
    }
    if (s.enc_hidden.size() > detail::kMaxHidden ||
        s.dec_hidden.size() > detail::kMaxHidden) {
      throw std::invalid_argument("too many hidden layers for the kernels");
    }
    if (p.enc_w.size() != s.enc_hidden.size() + 1 || p.enc_b.size() != p.enc_w.size() ||
        p.dec_w.size() != s.dec_hidden.size() + 1 || p.dec_b.size() != p.dec_w.size()) {
      throw std::invalid_argument("parameter lists do not match the layer shapes");
    }
    const std::size_t n_hidden = s.enc_hidden.size() + s.dec_hidden.size();
    if (s.batch_norm && (p.bn_mean.size() != n_hidden || p.bn_var.size() != n_hidden)) {
      throw std::invalid_argument("batch normalization statistics missing");
    }
  }

  static Dims make_dims(const Shape& s) {
    Dims d{};
    d.d = s.n_features;
    d.d_ld = padded(s.n_features);
    d.latent = s.latent;
    d.lat_ld = padded(s.latent);
    d.n_enc = s.enc_hidden.size();
    d.n_dec = s.dec_hidden.size();
    d.likelihood = s.likelihood;
    d.out_ld = s.likelihood == Likelihood::kBernoulli ? d.d_ld : 2 * d.d_ld;
    d.max_ld = std::max({d.d_ld, 2 * d.lat_ld, d.out_ld});
    for (std::size_t i = 0; i < d.n_enc; ++i) {
      d.enc_ld[i] = padded(s.enc_hidden[i]);
      d.max_ld = std::max(d.max_ld, d.enc_ld[i]);
    }
    for (std::size_t j = 0; j < d.n_dec; ++j) {
      d.dec_ld[j] = padded(s.dec_hidden[j]);
      d.max_ld = std::max(d.max_ld, d.dec_ld[j]);
    }
    d.batch_norm = s.batch_norm;
    return d;
  }

  ColumnMap column_map(std::size_t li) const {
    if (li < n_enc_layers_) {
      if (li + 1 == n_enc_layers_) return ColumnMap{2 * shape_.latent, shape_.latent};
      return ColumnMap{shape_.enc_hidden[li], 0};
    }
    const std::size_t j = li - n_enc_layers_;
    if (j + 1 == n_dec_layers_) {
      if (shape_.likelihood == Likelihood::kBernoulli) return ColumnMap{shape_.n_features, 0};
      return ColumnMap{2 * shape_.n_features, shape_.n_features};
    }
    return ColumnMap{shape_.dec_hidden[j], 0};
  }

  // Index of the batch normalization after layer li, or -1.
  long norm_index(std::size_t li) const {
    if (!shape_.batch_norm) return -1;
    if (li + 1 < n_enc_layers_) return static_cast<long>(li);
    if (li >= n_enc_layers_ && li + 1 < n_enc_layers_ + n_dec_layers_) {
      return static_cast<long>(shape_.enc_hidden.size() + li - n_enc_layers_);
    }
    return -1;
  }

  std::size_t hidden_width(std::size_t h) const {
    const std::size_t ne = shape_.enc_hidden.size();
    return h < ne ? shape_.enc_hidden[h] : shape_.dec_hidden[h - ne];
  }

  // The logical column at each padded column of a layer (-1: padding),
  // round32(ld) entries: where pack_weight_rows finds each column.
  static std::vector<std::int32_t> padded_source(const ColumnMap& cm) {
    std::vector<std::int32_t> source(detail::round32(cm.ld()), -1);
    for (std::size_t c = 0; c < cm.out; ++c) {
      source[cm.to_padded(c)] = static_cast<std::int32_t>(c);
    }
    return source;
  }

  // The same for a two-part layer's columns in feature blocks.
  static std::vector<std::int32_t> blocked_source(const ColumnMap& cm) {
    const std::vector<std::int32_t> source = padded_source(cm);
    const std::size_t half_ld = cm.ld() / 2;
    std::vector<std::int32_t> blocked(2 * detail::round32(half_ld), -1);
    for (std::size_t c = 0; c < blocked.size(); ++c) {
      const std::size_t at = detail::blocked_to_padded(c, half_ld);
      if (at < cm.ld()) blocked[c] = source[at];
    }
    return blocked;
  }

  void pack_bf16_training(const Params& p) {
#ifdef IWAE_HAVE_AMX_BUILD
    const std::size_t per_member = layers_per_member();
    // Above kBlockedTrainingFeatures a two-part output layer's rows are
    // packed in feature blocks only (Layer::w16_blocks): the forward pass
    // runs the layer with the likelihood.
    const auto blocked = [&](std::size_t li) {
      return li == per_member - 1 && maps_[li].half != 0 &&
             shape_.n_features > kBlockedTrainingFeatures;
    };
    const auto row_columns = [&](std::size_t li) {
      const std::size_t ld = maps_[li].ld();
      return blocked(li) ? 2 * detail::round32(ld / 2) : detail::round32(ld);
    };
    std::vector<std::size_t> offset(layers_.size() + 1, 0);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const Layer& ly = layers_[i];
      const std::size_t in32 = detail::round32(ly.in), ld32 = detail::round32(ly.ld);
      const std::size_t transpose =
          has_transpose(i % per_member) ? ld32 * detail::round32(ly.in_ld) : 0;
      offset[i + 1] = offset[i] + in32 * row_columns(i % per_member) + transpose + 64;
    }
    std::uint16_t* block = cached_weights16(offset.back());
    for (std::size_t li = 0; li < per_member; ++li) {
      const ColumnMap& cm = maps_[li];
      const std::vector<std::int32_t> source = padded_source(cm);
      const std::vector<std::int32_t> row_source = blocked(li) ? blocked_source(cm) : source;
      const bool enc = li < n_enc_layers_;
      const std::size_t idx = enc ? li : li - n_enc_layers_;
      for (std::size_t m = 0; m < shape_.n_members; ++m) {
        const std::size_t i = m * per_member + li;
        Layer& ly = layers_[i];
        const float* w = (enc ? p.enc_w : p.dec_w)[idx] + m * ly.in * cm.out;
        std::uint16_t* rows = block + offset[i];
        std::uint16_t* cols = rows + detail::round32(ly.in) * row_columns(li);
        detail::kernel_amx::pack_weight_rows(w, ly.in, cm.out, row_source.data(),
                                             row_source.size(), rows, blocked(li));
        if (has_transpose(li)) {
          detail::kernel_amx::pack_weight_columns(w, ly.in, cm.out, source.data(), ly.ld,
                                                  ly.in_ld, cols);
        }
        (blocked(li) ? ly.w16_blocks : ly.w16) = rows;
        ly.wt16 = has_transpose(li) ? cols : nullptr;
      }
    }
    dims_.bf16 = true;
#else
    (void)p;
    throw std::invalid_argument("bfloat16 products need the AMX build");
#endif
  }

  // With blocked, each member's output layer gets its feature-blocked copy
  // instead, straight from PyTorch's layout (the output layer has no folded
  // normalization): the scores use no other.
  void pack_bf16_weights(const Params& p, bool blocked) {
#ifdef IWAE_HAVE_AMX_BUILD
    const std::size_t per_member = layers_per_member();
    const std::size_t out_li = per_member - 1;
    const std::vector<std::int32_t> out_source =
        blocked ? blocked_source(maps_[out_li]) : std::vector<std::int32_t>();
    std::vector<std::size_t> offset(layers_.size() + 1, 0);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const Layer& ly = layers_[i];
      const bool blocks = blocked && i % per_member == out_li;
      const std::size_t columns = blocks ? out_source.size() : detail::round32(ly.ld);
      offset[i + 1] = offset[i] + detail::round32(ly.in) * columns + 32;
    }
    store16_ = large_block<std::uint16_t>(offset.back());
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      Layer& ly = layers_[i];
      std::uint16_t* dst = store16_.get() + offset[i];
      if (blocked && i % per_member == out_li) {
        const std::size_t m = i / per_member, idx = out_li - n_enc_layers_;
        const float* w = p.dec_w[idx] + m * ly.in * maps_[out_li].out;
        detail::kernel_amx::pack_weight_rows(w, ly.in, maps_[out_li].out, out_source.data(),
                                             out_source.size(), dst, /*blocked=*/true);
        ly.w16_blocks = dst;
        continue;
      }
      detail::kernel_amx::pack_weight_pairs(ly.w, ly.in, ly.ld, dst);
      ly.w16 = dst;
    }
    dims_.bf16 = true;
#else
    (void)p;
    (void)blocked;
    throw std::invalid_argument("bfloat16 products need the AMX build");
#endif
  }

  // Calls fn(c, to, len) for the runs of logical columns [c, c + len) that
  // map to consecutive padded columns [to, to + len) inside one panel.
  template <class Fn>
  static void for_each_run(const ColumnMap& cm, Fn fn) {
    const std::size_t ld = cm.ld();
    const std::size_t parts = cm.half ? 2 : 1;
    const std::size_t part_len = cm.half ? cm.half : cm.out;
    for (std::size_t part = 0; part < parts; ++part) {
      const std::size_t first = part * part_len;
      std::size_t c = first;
      while (c < first + part_len) {
        const std::size_t to = cm.to_padded(c);
        const std::size_t panel_end = to / kPanel * kPanel + panel_width(to, ld);
        const std::size_t len = std::min(first + part_len - c, panel_end - to);
        fn(c, to, len);
        c += len;
      }
    }
  }

  // With panels false (training with bfloat16 products, a blocked output
  // layer in scoring) only the bias.
  void pack_layer(const Params& p, std::size_t m, std::size_t li, bool fold,
                  bool transposes, bool panels) {
    const bool enc = li < n_enc_layers_;
    const std::size_t idx = enc ? li : li - n_enc_layers_;
    const float* w_src = (enc ? p.enc_w : p.dec_w)[idx];
    const float* b_src = (enc ? p.enc_b : p.dec_b)[idx];
    const ColumnMap& cm = maps_[li];
    const std::size_t in = layer_in(li), out = cm.out, ld = cm.ld();
    w_src += m * in * out;
    b_src += m * out;
    const Offsets& o = offsets_[m * layers_per_member() + li];
    float* w = store_.get() + o.w;
    float* b = store_.get() + o.b;

    const long ni = fold ? norm_index(li) : -1;
    std::vector<double> scale(out, 1.0), shift(out, 0.0);
    if (ni >= 0) {
      const float* rm = p.bn_mean[ni] + m * out;
      const float* rv = p.bn_var[ni] + m * out;
      for (std::size_t c = 0; c < out; ++c) {
        scale[c] = 1.0 / std::sqrt(static_cast<double>(rv[c]) + 1e-5);
        shift[c] = rm[c];
      }
    }
    // A layer without a folded norm (every layer in training) keeps its
    // weights as they are, without the round trip through double: each run
    // of columns that stays inside one panel is one copy.
    const bool folded = ni >= 0;
    if (panels && ld != out) std::fill(w, w + in * ld, 0.0f);  // padding columns
    for (std::size_t i = 0; panels && i < in; ++i) {
      const float* row = w_src + i * out;
      for_each_run(cm, [&](std::size_t c, std::size_t to, std::size_t len) {
        float* dst = w + panel_offset(i, to, in, ld);
        if (!folded && len == kPanel) {
          std::memcpy(dst, row + c, kPanel * sizeof(float));  // a constant size: inlined
          return;
        }
        if (!folded) {
          for (std::size_t k = 0; k < len; ++k) dst[k] = row[c + k];
          return;
        }
        for (std::size_t k = 0; k < len; ++k) {
          dst[k] = static_cast<float>(row[c + k] * scale[c + k]);
        }
      });
    }
    std::fill(b, b + ld, 0.0f);
    for (std::size_t c = 0; c < out; ++c) {
      b[cm.to_padded(c)] = static_cast<float>((b_src[c] - shift[c]) * scale[c]);
    }
    float* wt = nullptr;
    const std::size_t in_ld = padded(in);
    if (!panels) w = nullptr;
    if (panels && transposes && has_transpose(li)) {
      // In blocks of 16 x 16, which are contiguous in both layouts.
      wt = store_.get() + o.wt;
      for (std::size_t i0 = 0; i0 < in_ld; i0 += kPanel) {
        const std::size_t i1 = std::min(i0 + kPanel, in_ld);
        for (std::size_t c0 = 0; c0 < ld; c0 += kPanel) {
          const std::size_t c1 = std::min(c0 + kPanel, ld);
          for (std::size_t c = c0; c < c1; ++c) {
            for (std::size_t i = i0; i < i1; ++i) {
              wt[panel_offset(c, i, ld, in_ld)] = i < in ? w[panel_offset(i, c, in, ld)] : 0.0f;
            }
          }
        }
      }
    }
    layers_[m * layers_per_member() + li] =
        Layer{w, wt, b, in, in_ld, ld, nullptr, nullptr, nullptr};
  }

  Shape shape_;
  Dims dims_{};
  std::size_t n_enc_layers_ = 0, n_dec_layers_ = 0;
  LargeBlock<float> store_;
  LargeBlock<std::uint16_t> store16_;  // Layer::w16 of every layer
  std::vector<Offsets> offsets_;
  std::vector<ColumnMap> maps_;
  std::vector<Layer> layers_;
  std::vector<Norm> norms_;
  std::vector<Net> nets_;
};

// Rows of a scoring block and samples per decoder tile. A tile of about
// 64 K floats of activations per layer stays in the L2 cache; at least 8
// rows per block keep the encoder's products from degenerating into
// matrix-vector products.
// With blocked_output the output layer's tile is never stored, and tiles
// of about 256 rows read each block of its weights once per 256 rows; the
// samples are split into tiles of equal size.
void score_tiling(const Dims& dims, std::size_t samples, bool blocked_output, std::size_t* rows,
                  std::size_t* tile) {
  const std::size_t target =
      blocked_output ? 256
                     : std::min<std::size_t>(512, std::max<std::size_t>(64, 65536 / dims.max_ld));
  *rows = std::min<std::size_t>(64, std::max<std::size_t>(8, target / samples));
  *tile = std::min(samples, std::max<std::size_t>(1, target / *rows));
  if (blocked_output) {
    const std::size_t tiles = (samples + *tile - 1) / *tile;
    *tile = (samples + tiles - 1) / tiles;
  }
}

// The draws (count x L) padded to whole packs, and each draw's squared norm.
struct PaddedDraws {
  std::vector<float> eps, sq;
  PaddedDraws(const float* eps_in, std::size_t count, std::size_t L)
      : eps(count * padded(L), 0.0f), sq(count) {
    const std::size_t lp = padded(L);
    for (std::size_t i = 0; i < count; ++i) {
      float s = 0.0f;
      for (std::size_t l = 0; l < L; ++l) {
        const float e = eps_in[i * L + l];
        eps[i * lp + l] = e;
        s += e * e;
      }
      sq[i] = s;
    }
  }
};

// The training updates' scratch, kept by each calling thread from one
// update to the next (release_scratch frees it): a wide network's update
// needs hundreds of MB, and fresh pages cost a page fault each, every
// update.
struct ScratchCache {
  LargeBlock<float> block;
  std::size_t floats = 0;
};
thread_local ScratchCache update_scratch;

// p moved up to the next 64-byte boundary (a block allocated with 64 bytes
// of slack holds it).
template <class T>
T* aligned64(T* p) {
  return p + (64 - reinterpret_cast<std::uintptr_t>(p) % 64) % 64 / sizeof(T);
}

// The calling thread's cached scratch, grown to at least floats.
float* cached_scratch(std::size_t floats) {
  if (update_scratch.floats < floats) {
    update_scratch.block.reset();  // the old block goes before the new one comes
    update_scratch.block = large_block<float>(floats);
    update_scratch.floats = floats;
  }
  return update_scratch.block.get();
}

// Calls task(i, work) for every i in [0, count), spread over threads, each
// thread with its own work_floats of scratch (from update_scratch when
// cached, else a fresh block). Every task writes its own outputs, so
// results do not depend on the thread count.
template <class Task>
void parallel_tasks(std::size_t count, std::size_t work_floats, int n_threads,
                    const Task& task, bool cached = false) {
  const int threads = static_cast<int>(
      std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(n_threads)), count));
  // Left uninitialized: every kernel writes its scratch before reading it,
  // as it must, since the tasks of one thread reuse the same block.
  // Each thread's block starts on a 64-byte boundary (Arena's pieces are
  // aligned relative to it): 16 floats of slack align the first.
  work_floats = (work_floats + 15) / 16 * 16;
  const std::size_t total = static_cast<std::size_t>(threads) * work_floats + 16;
  LargeBlock<float> fresh;
  float* base = nullptr;
  if (cached) {
    base = cached_scratch(total);
  } else {
    fresh = large_block<float>(total);
    base = fresh.get();
  }
  base = aligned64(base);

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (long i = 0; i < static_cast<long>(count); ++i) {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    task(static_cast<std::size_t>(i), base + tid * work_floats);
  }
}

// Calls block(m, r0, r_count, work) for every member m and block of `rows`
// rows, one task per member and block.
template <class Block>
void for_each_block(std::size_t n, std::size_t rows, std::size_t members,
                    std::size_t work_floats, int n_threads, const Block& block) {
  const std::size_t blocks = (n + rows - 1) / rows;
  parallel_tasks(blocks * members, work_floats, n_threads, [&](std::size_t task, float* work) {
    const std::size_t m = task / blocks;
    const std::size_t r0 = (task % blocks) * rows;
    block(m, r0, std::min(rows, n - r0), work);
  });
}

// The setup score and contributions share: the ensemble packed with batch
// normalization folded in and the draws padded. Each decoder row's
// arithmetic does not depend on the rows that share its block or tile, so a
// row's log weights are the same bits in both passes whatever their tiling
// (blocked_output: the scores' tiles, see score_tiling). Calls
// block(dims, net, m, r0, r_count, eps_m, eps_sq_m, tile, work) for every
// member m and block of rows [r0, r0 + r_count); extra_scratch adds the
// block's own scratch (in floats) to the scoring pass's.
template <class Block, class ExtraScratch>
void scoring_pass(const Shape& shape, const Params& params, std::size_t n, const float* eps,
                  std::size_t n_samples, int n_threads, const ExtraScratch& extra_scratch,
                  const Block& block, bool bf16_products = false,
                  bool blocked_output = false) {
  if (n == 0) return;
  if (n_samples == 0) throw std::invalid_argument("n_samples must be positive");
  const PackedEnsemble net(shape, params, /*fold_norms=*/true, /*transposes=*/false,
                           bf16_products, blocked_output && bf16_products);
  const Dims& dims = net.dims();
  const std::size_t lp = padded(shape.latent);
  const PaddedDraws draws(eps, shape.n_members * n_samples, shape.latent);
  const bool blocked = net.net(0).dec[dims.n_dec].w16_blocks != nullptr;

  std::size_t rows = 0, tile = 0;
  score_tiling(dims, n_samples, blocked, &rows, &tile);
  detail::Arena count{nullptr};
  detail::carve_score(dims, count, rows, n_samples, tile, blocked);
  extra_scratch(dims, count, rows);
  for_each_block(n, rows, shape.n_members, count.used + 16, n_threads,
                 [&](std::size_t m, std::size_t r0, std::size_t r_count, float* work) {
                   block(dims, net.net(m), m, r0, r_count,
                         draws.eps.data() + m * n_samples * lp,
                         draws.sq.data() + m * n_samples, tile, work);
                 });
}

// bfloat16 products run on the AMX tiles only.
void check_bf16_products(bool bf16_products) {
  if (bf16_products && !use_amx()) {
    throw std::invalid_argument("bfloat16 products need AMX and AVX512-BF16 on this CPU");
  }
}

}  // namespace

void score(const Shape& shape, const Params& params, const float* x,
           std::size_t n, const float* eps, std::size_t n_samples,
           double* losses, int n_threads, bool bf16_products) {
  check_bf16_products(bf16_products);
  const std::size_t d = shape.n_features;
  scoring_pass(shape, params, n, eps, n_samples, n_threads,
               [](const Dims&, detail::Arena&, std::size_t) {},
               [&](const Dims& dims, const Net& net, std::size_t m, std::size_t r0,
                   std::size_t r_count, const float* e, const float* e_sq, std::size_t tile,
                   float* work) {
                 score_block(dims, net, x + r0 * d, r_count, e, e_sq, n_samples, tile, work,
                             losses + m * n + r0);
               },
               bf16_products, /*blocked_output=*/true);
}

void contributions(const Shape& shape, const Params& params, const float* x,
                   std::size_t n, const float* eps, std::size_t n_samples,
                   float* contribs, double* rest, int n_threads, bool bf16_products) {
  check_bf16_products(bf16_products);
  const std::size_t d = shape.n_features;
  scoring_pass(shape, params, n, eps, n_samples, n_threads,
               [&](const Dims& dims, detail::Arena& count, std::size_t rows) {
                 detail::carve_contrib(dims, count, rows, n_samples);
               },
               [&](const Dims& dims, const Net& net, std::size_t m, std::size_t r0,
                   std::size_t r_count, const float* e, const float* e_sq, std::size_t tile,
                   float* work) {
                 contrib_block(dims, net, x + r0 * d, r_count, e, e_sq, n_samples, tile, work,
                               contribs + (m * n + r0) * d, rest + m * n + r0);
               },
               bf16_products);
}

void train_step(const Shape& shape, const Params& params, const Batch& batch,
                const CuboTerm& cubo, const Grads& grads, double* objectives,
                int n_threads, bool bf16_products) {
  if (batch.rows == 0 || batch.samples == 0) throw std::invalid_argument("empty batch");
  check_bf16_products(bf16_products);
  const PackedEnsemble net(shape, params, /*fold_norms=*/false, /*transposes=*/true,
                           bf16_products);
  Dims dims = net.dims();
  const std::size_t M = shape.n_members, d = shape.n_features, L = shape.latent;
  const bool labeled = cubo.batch.rows > 0;

  // Padded gradient blocks of one member, laid out like its packed layers.
  const std::size_t per_member = net.layers_per_member();
  std::vector<std::size_t> grad_offset(per_member + 1, 0);
  for (std::size_t li = 0; li < per_member; ++li) {
    const std::size_t ld = net.map(li).ld();
    grad_offset[li + 1] = grad_offset[li] + (net.layer_in(li) + 1) * ld;
  }
  const std::size_t grad_floats = grad_offset[per_member];

  // Both passes' buffers live at once (see train_update).
  detail::Arena count{nullptr};
  detail::carve_train(dims, count, batch.rows, batch.samples);
  if (labeled) detail::carve_train(dims, count, cubo.batch.rows, cubo.batch.samples);
  {
    const detail::PassInput main_pass{nullptr, nullptr, batch.rows, batch.samples,
                                      detail::Objective::kIwae, 1.0, 1.0};
    const detail::PassInput cubo_pass{nullptr, nullptr, cubo.batch.rows, cubo.batch.samples,
                                      detail::Objective::kCubo, 1.0, 1.0};
    detail::carve_bf16(dims, count, main_pass, labeled ? &cubo_pass : nullptr);
  }
  const std::size_t work_floats = count.used + grad_floats + 16;

  const std::size_t n_enc_layers = shape.enc_hidden.size() + 1;
  // PyTorch's gradients of layer li of member m, and whether the padded
  // layout is PyTorch's (no padding column): then the kernels write there.
  const auto torch_grads = [&](std::size_t m, std::size_t li) {
    const bool enc = li < n_enc_layers;
    const std::size_t idx = enc ? li : li - n_enc_layers;
    const std::size_t in = net.layer_in(li), out = net.map(li).out;
    return LayerGrad{(enc ? grads.enc_w : grads.dec_w)[idx] + m * in * out,
                     (enc ? grads.enc_b : grads.dec_b)[idx] + m * out};
  };
  const auto same_layout = [&](std::size_t li) { return net.map(li).ld() == net.map(li).out; };

  parallel_tasks(M, work_floats, n_threads, [&](std::size_t m, float* mine) {
    float* g = mine;  // written over by the first backward pass
    LayerGrad lg[2 * detail::kMaxHidden + 2];
    for (std::size_t li = 0; li < per_member; ++li) {
      const std::size_t in = net.layer_in(li), ld = net.map(li).ld();
      lg[li] = same_layout(li) ? torch_grads(m, li)
                               : LayerGrad{g + grad_offset[li], g + grad_offset[li] + in * ld};
    }
    const NetGrad ng{lg, lg + n_enc_layers};
    float* scratch = mine + grad_floats;
    // Rounded up so that the scratch starts 64-byte aligned like the rest.
    scratch += (16 - (grad_floats % 16)) % 16;

    const detail::PassInput pass{batch.x + m * batch.rows * d,
                                 batch.eps + m * batch.samples * batch.rows * L,
                                 batch.rows, batch.samples, detail::Objective::kIwae,
                                 1.0, 1.0};
    detail::PassInput lpass{};
    if (labeled) {
      lpass = detail::PassInput{
          cubo.batch.x + m * cubo.batch.rows * d,
          cubo.batch.eps + m * cubo.batch.samples * cubo.batch.rows * L,
          cubo.batch.rows, cubo.batch.samples, detail::Objective::kCubo,
          cubo.weight, cubo.order};
    }
    objectives[m] = train_update(dims, net.net(m), pass, labeled ? &lpass : nullptr, ng,
                                 scratch);

    // Back to PyTorch's layout, where the padding made them differ.
    for (std::size_t li = 0; li < per_member; ++li) {
      if (same_layout(li)) continue;
      const ColumnMap& cm = net.map(li);
      const std::size_t in = net.layer_in(li), ld = cm.ld();
      const LayerGrad to = torch_grads(m, li);
      for (std::size_t i = 0; i < in; ++i) {
        copy_logical_columns(cm, lg[li].w + i * ld, to.w + i * cm.out);
      }
      copy_logical_columns(cm, lg[li].b, to.b);
    }
  }, /*cached=*/true);
}

bool openmp_enabled() { return odim_openmp::enabled(); }

int default_threads() { return odim_openmp::default_threads(); }

const char* isa() {
  if (use_avx512()) return "avx512+amx";
  return use_avx2() ? "avx2+fma" : "generic";
}

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<std::int64_t> product_clock_ns{0};

// The calling thread's open product scopes that entered the clock, and when
// the outermost one opened.
struct ProductClockThread {
  int depth = 0;
  Clock::time_point start;
};
thread_local ProductClockThread product_clock_thread;

}  // namespace

namespace detail {

bool product_clock_running = false;

void product_clock_enter() {
  ProductClockThread& t = product_clock_thread;
  if (t.depth++ == 0) t.start = Clock::now();
}

void product_clock_leave() {
  ProductClockThread& t = product_clock_thread;
  if (--t.depth > 0) return;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t.start);
  product_clock_ns.fetch_add(ns.count(), std::memory_order_relaxed);
}

}  // namespace detail

void start_product_clock() {
  product_clock_ns.store(0);
  __atomic_store_n(&detail::product_clock_running, true, __ATOMIC_SEQ_CST);
}

double stop_product_clock() {
  __atomic_store_n(&detail::product_clock_running, false, __ATOMIC_SEQ_CST);
  return static_cast<double>(product_clock_ns.load()) * 1e-9;
}

void allow_avx2(bool allowed) { avx2_allowed = allowed; }

void allow_avx512(bool allowed) { avx512_allowed = allowed; }

bool bf16_available() { return use_amx(); }

void release_scratch() {
  update_scratch = ScratchCache{};
  training_weights16 = WeightCache{};
}

void bf16_matmul(const float* A, const float* B, std::size_t M, std::size_t K, std::size_t N,
                 float* C) {
  if (!use_amx()) throw std::invalid_argument("bf16_matmul needs AMX and AVX512-BF16");
#ifdef IWAE_HAVE_AMX_BUILD
  using detail::round32;
  // Packing writes every value of both operands' scratch: the thread's
  // cached block, so that repeated calls fault in no fresh pages.
  const std::size_t a_values = round32(M) * round32(K), b_values = round32(K) * round32(N);
  // Whole 64-byte lines for each operand (32 values), plus alignment slack.
  std::uint16_t* a = aligned64(reinterpret_cast<std::uint16_t*>(
      cached_scratch((a_values + b_values) / 2 + 16)));
  detail::kernel_amx::bf16_matmul(A, B, M, K, N, C, a, a + a_values);
#else
  (void)A, (void)B, (void)M, (void)K, (void)N, (void)C;
#endif
}

}  // namespace iwae
