// Repacked layers and work plans shared by the dispatcher (iwae.cpp) and the
// per-instruction-set builds of the hot loops (iwae_kernel.inc). Plain
// structs of raw pointers only: the kernel builds use no library templates,
// so nothing compiled for AVX2 can be picked by the linker for another path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "iwae_likelihood.hpp"

namespace iwae {
namespace detail {

// Every row of an activation or weight block is padded to a multiple of
// kLanes floats, the width of one vector pack.
constexpr std::size_t kLanes = 8;

constexpr std::size_t padded(std::size_t n) {
  return (n + kLanes - 1) / kLanes * kLanes;
}

// The AMX tiles' operands are padded to multiples of 32 in every dimension.
constexpr std::size_t round32(std::size_t n) { return (n + 31) / 32 * 32; }

// Features per block of a two-part output layer with blocked weights
// (Layer::w16_blocks): each block is 2 kFeatureBlock columns, the features'
// first halves (means or mean logits), then their second (raw
// log-variances).
constexpr std::size_t kFeatureBlock = 32;

// Where blocked column c of such a layer is in its padded layout (halves at
// 0 and half_ld), or half_ld * 2 for a feature at or beyond half_ld.
constexpr std::size_t blocked_to_padded(std::size_t c, std::size_t half_ld) {
  const std::size_t feature = c / (2 * kFeatureBlock) * kFeatureBlock + c % kFeatureBlock;
  if (feature >= half_ld) return 2 * half_ld;
  return (c % (2 * kFeatureBlock) < kFeatureBlock ? 0 : half_ld) + feature;
}

// Weight matrices are stored as column panels: the columns [c, c + 16) of
// an (rows x cols) matrix form one contiguous (rows x 16) block starting at
// offset c * rows, and a last panel of 8 columns follows when cols % 16 is
// 8. A panel stays in the L1 cache while the rows of the activations stream
// past it, and rows of a wide matrix never alias one cache set.
constexpr std::size_t kPanel = 16;

constexpr std::size_t panel_width(std::size_t c, std::size_t cols) {
  return c / kPanel * kPanel + kPanel <= cols ? kPanel : kLanes;
}

// Offset of element (i, c) of a (rows x cols) matrix in panel layout.
constexpr std::size_t panel_offset(std::size_t i, std::size_t c, std::size_t rows,
                                   std::size_t cols) {
  return c / kPanel * kPanel * rows + i * panel_width(c, cols) + c % kPanel;
}

// One dense layer of one member, repacked. Logical output columns sit at
// [0, out) or, for a two-part layer (the head: mu | log-variance; the
// Gaussian output: mean | log-variance), at [0, half) and
// [padded(half), padded(half) + half). All other columns are zero.
struct Layer {
  const float* w;   // (in, ld) in panel layout
  const float* wt;  // (ld, in_ld) transpose in panel layout, for backward;
                    // nullptr if unused
  const float* b;   // (ld)
  std::size_t in;   // logical inputs
  std::size_t in_ld;
  std::size_t ld;   // padded outputs
  // w rounded to bfloat16 in the AMX tiles' pairs of rows (iwae_amx.inc),
  // for passes with bfloat16 products; nullptr otherwise.
  const std::uint16_t* w16;
  // wt the same way, for a training update with bfloat16 products (whose
  // layers then have neither w nor wt); nullptr otherwise.
  const std::uint16_t* wt16;
  // A two-part output layer (Gaussian, rectified) in a bfloat16 scoring
  // pass, or in a bfloat16 training update above kBlockedTrainingFeatures
  // (iwae.cpp): w16 with its columns in feature blocks (iwae_amx.inc), so
  // that the layer and the likelihood run together; w16 itself is then
  // left null. nullptr otherwise.
  const std::uint16_t* w16_blocks;
};

// Per hidden layer batch normalization (no affine part). Training uses the
// batch statistics and updates running_*; evaluation uses running_*.
struct Norm {
  float* running_mean;  // (width), PyTorch's array, updated in place
  float* running_var;
  std::size_t width;    // logical width
};

// One member's network: hidden layers, then the head (enc[n_enc]) or the
// output layer (dec[n_dec]). norms has n_enc + n_dec entries (encoder
// first), or is nullptr without batch normalization.
struct Net {
  const Layer* enc;
  const Layer* dec;
  const Norm* norms;
};

// Deeper networks run on the PyTorch path instead.
constexpr std::size_t kMaxHidden = 16;

struct Dims {
  std::size_t d, d_ld;          // features
  std::size_t latent, lat_ld;   // latent size
  std::size_t n_enc, n_dec;     // hidden layers
  std::size_t enc_ld[kMaxHidden];
  std::size_t dec_ld[kMaxHidden];
  std::size_t out_ld;           // output layer: 2 d_ld (Gaussian) or d_ld
  std::size_t max_ld;           // widest padded block of any layer
  Likelihood likelihood;
  bool batch_norm;
  bool bf16;                    // products in bfloat16 (AMX build)
};

// Gradients of one member: (in, ld) row-major and (ld), in the padded
// column order of Layer::b, accumulated by the kernels.
struct LayerGrad {
  float* w;
  float* b;
};

struct NetGrad {
  LayerGrad* enc;  // n_enc + 1
  LayerGrad* dec;  // n_dec + 1
};

// Hands out consecutive, 64-byte aligned pieces of one scratch block. With
// a null base it only counts, which is how callers size the block.
struct Arena {
  float* base;
  std::size_t used = 0;
  float* take(std::size_t n) {
    float* p = base ? base + used : nullptr;
    used += (n + 15) / 16 * 16;
    return p;
  }
};

// Scratch of one score_block call: R rows, K samples in tiles of kt.
struct ScoreBuffers {
  float *xp, *act0, *act1, *mu, *sd, *sumlv, *lpr, *lw;
  float* sums;         // 8 floats per tile row: the likelihood's running sums
  float* lpx;          // log p(x | z) per tile row
  std::uint16_t* a16;  // bfloat16 rows of a product (Dims::bf16), else nullptr
};

// The widest layer but the output layer: hidden layers and the encoder's
// head.
inline std::size_t widest_hidden(const Dims& dm) {
  std::size_t w = 2 * dm.lat_ld;
  for (std::size_t i = 0; i < dm.n_enc; ++i) w = w > dm.enc_ld[i] ? w : dm.enc_ld[i];
  for (std::size_t j = 0; j < dm.n_dec; ++j) w = w > dm.dec_ld[j] ? w : dm.dec_ld[j];
  return w;
}

// With blocked_output (the output layer runs with the likelihood, its
// outputs never stored), the activation buffers hold the hidden layers only.
inline ScoreBuffers carve_score(const Dims& dm, Arena& a, std::size_t rows,
                                std::size_t samples, std::size_t tile,
                                bool blocked_output = false) {
  ScoreBuffers s;
  const std::size_t tile_rows = rows * tile;
  const std::size_t act_ld = blocked_output ? widest_hidden(dm) : dm.max_ld;
  s.xp = a.take(rows * dm.d_ld);
  s.act0 = a.take(tile_rows * act_ld);
  s.act1 = a.take(tile_rows * act_ld);
  s.mu = a.take(rows * dm.lat_ld);
  s.sd = a.take(rows * dm.lat_ld);
  s.sumlv = a.take(rows);
  s.lpr = a.take(tile_rows);
  s.lw = a.take(rows * samples);
  s.sums = a.take(tile_rows * 8);
  s.lpx = a.take(tile_rows);
  s.a16 = nullptr;
  if (dm.bf16) {
    // The widest product's rows, both dimensions rounded: the input rows,
    // or a tile's rows through the widest other layer.
    const std::size_t input = round32(rows) * round32(dm.d_ld);
    const std::size_t tiles = round32(tile_rows) * round32(act_ld);
    const std::size_t most = input > tiles ? input : tiles;
    s.a16 = reinterpret_cast<std::uint16_t*>(a.take(most / 2 + 16));
  }
  return s;
}

// Extra scratch of one contrib_block call, after its ScoreBuffers: per row
// the running sums of the per-feature terms (d_ld) and their running
// maximum log weight, each sample's log p(z) - log q(z | x), and one row's
// exponentials (samples doubles).
struct ContribBuffers {
  float *acc, *mx, *lpr;
  double* e;
};

inline ContribBuffers carve_contrib(const Dims& dm, Arena& a, std::size_t rows,
                                    std::size_t samples) {
  ContribBuffers c;
  c.acc = a.take(rows * dm.d_ld);
  c.mx = a.take(rows);
  c.lpr = a.take(rows * samples);
  c.e = reinterpret_cast<double*>(a.take(2 * samples));
  return c;
}

// The product clock (iwae.cpp; benchmarks only): while it runs, every
// bfloat16 product on the tiles (its operands' rounding and packing
// included) adds its time to it. A product marks itself with a
// ProductClockScope; a scope inside another counts once. Stopped, a scope
// costs one load of the flag; running, plain calls into iwae.cpp, so that
// the kernel builds compile no library code for it.
extern bool product_clock_running;  // read and written with __atomic builtins
void product_clock_enter();
void product_clock_leave();

class ProductClockScope {
 public:
  ProductClockScope() : timing_(__atomic_load_n(&product_clock_running, __ATOMIC_RELAXED)) {
    if (timing_) product_clock_enter();
  }
  ~ProductClockScope() {
    if (timing_) product_clock_leave();
  }
  ProductClockScope(const ProductClockScope&) = delete;
  ProductClockScope& operator=(const ProductClockScope&) = delete;

 private:
  const bool timing_;
};

// Rows per chunk of a weight-gradient product: each chunk reads and writes
// the whole gradient G once, so larger chunks pass over it fewer times.
constexpr std::size_t kGradChunk = 256;

// Scratch of one pass of train_update over B rows and K samples. The forward
// pass keeps what the backward pass needs: each hidden layer's normalized
// pre-activation y, activation a and inverse standard deviation.
struct TrainBuffers {
  float *xp, *head, *lv, *sd, *sumlv, *z, *lpr, *out, *lw, *dlw;
  float *back0, *back1, *dhead;
  float* scratch;  // 2 max_ld doubles, then 2 max_ld floats
  float* pack;     // row chunks repacked for the weight gradients
  float* sums;     // 8 floats per decoder row: the likelihood's running sums
  float* enc_y[kMaxHidden];
  float* enc_a[kMaxHidden];
  float* enc_inv[kMaxHidden];
  float* dec_y[kMaxHidden];
  float* dec_a[kMaxHidden];
  float* dec_inv[kMaxHidden];
  // Per hidden layer, the column sums of d objective / d y and of
  // y * d objective / d y (2 ld doubles) of a pass normalized by another
  // pass's statistics; that pass's backward adds them in.
  double* enc_sums[kMaxHidden];
  double* dec_sums[kMaxHidden];
};

inline TrainBuffers carve_train(const Dims& dm, Arena& a, std::size_t rows,
                                std::size_t samples) {
  TrainBuffers t;
  const std::size_t kb = rows * samples;
  t.xp = a.take(rows * dm.d_ld);
  for (std::size_t i = 0; i < dm.n_enc; ++i) {
    t.enc_y[i] = a.take(rows * dm.enc_ld[i]);
    t.enc_a[i] = a.take(rows * dm.enc_ld[i]);
    t.enc_inv[i] = a.take(2 * dm.enc_ld[i]);  // 1 / sd, then the means
    t.enc_sums[i] = reinterpret_cast<double*>(a.take(4 * dm.enc_ld[i]));
  }
  t.head = a.take(rows * 2 * dm.lat_ld);
  t.lv = a.take(rows * dm.lat_ld);
  t.sd = a.take(rows * dm.lat_ld);
  t.sumlv = a.take(rows);
  t.z = a.take(kb * dm.lat_ld);
  t.lpr = a.take(kb);
  for (std::size_t j = 0; j < dm.n_dec; ++j) {
    t.dec_y[j] = a.take(kb * dm.dec_ld[j]);
    t.dec_a[j] = a.take(kb * dm.dec_ld[j]);
    t.dec_inv[j] = a.take(2 * dm.dec_ld[j]);
    t.dec_sums[j] = reinterpret_cast<double*>(a.take(4 * dm.dec_ld[j]));
  }
  t.out = a.take(kb * dm.out_ld);
  t.lw = a.take(kb);
  t.dlw = a.take(kb);
  t.back0 = a.take(kb * dm.max_ld);
  t.back1 = a.take(kb * dm.max_ld);
  t.dhead = a.take(rows * 2 * dm.lat_ld);
  t.scratch = a.take(8 * dm.max_ld);
  t.pack = a.take(2 * kGradChunk * dm.max_ld);
  t.sums = a.take(8 * kb);
  return t;
}

// One kind of pass through the network inside a training update.
enum class Objective { kIwae, kCubo };

struct PassInput {
  const float* x;    // (rows, d) of this member
  const float* eps;  // (samples, rows, latent) of this member
  std::size_t rows;
  std::size_t samples;
  Objective objective;
  double weight;     // multiplies the mean over rows
  double order;      // CUBO order u
};

// bfloat16 operands of the products of a training update with bfloat16
// products (Dims::bf16; the AMX build, iwae_amx.inc): A (rows x inner) and
// B (inner x columns), each dimension rounded up to 32, of the widest
// product; the weight gradients take rows in chunks of kGradChunk.
struct Bf16Buffers {
  std::uint16_t *a = nullptr, *b = nullptr;
};

inline Bf16Buffers carve_bf16(const Dims& dm, Arena& a, const PassInput& in,
                              const PassInput* labeled) {
  Bf16Buffers s;
  if (!dm.bf16) return s;
  std::size_t rows = in.rows * in.samples;
  if (labeled && labeled->rows * labeled->samples > rows) rows = labeled->rows * labeled->samples;
  const std::size_t outer = round32(rows > kGradChunk ? rows : kGradChunk);
  const std::size_t width = round32(dm.max_ld);
  const std::size_t count = (outer > width ? outer : width) * width;  // bfloat16 values
  s.a = reinterpret_cast<std::uint16_t*>(a.take(count / 2 + 16));
  s.b = reinterpret_cast<std::uint16_t*>(a.take(count / 2 + 16));
  return s;
}

// The entry points every instruction-set build provides (namespaces
// kernel_generic, kernel_avx2 and kernel_amx).
#define IWAE_DECLARE_KERNELS(ns)                                             \
  namespace ns {                                                             \
  void score_block(const Dims& dims, const Net& net, const float* x,         \
                   std::size_t rows, const float* eps, const float* eps_sq,  \
                   std::size_t samples, std::size_t tile_samples,            \
                   float* work, double* out);                                \
  void contrib_block(const Dims& dims, const Net& net, const float* x,       \
                     std::size_t rows, const float* eps,                     \
                     const float* eps_sq,                                    \
                     std::size_t samples, std::size_t tile_samples,          \
                     float* work, float* c_out, double* r_out);              \
  double train_update(const Dims& dims, const Net& net, const PassInput& in, \
                      const PassInput* labeled, const NetGrad& grad,         \
                      float* work);                                          \
  }

IWAE_DECLARE_KERNELS(kernel_generic)
#if defined(__x86_64__) && defined(__GNUC__)
#define IWAE_HAVE_AVX2_BUILD 1
IWAE_DECLARE_KERNELS(kernel_avx2)
#endif
// GCC 11 and Clang 12 know the AMX and AVX512-BF16 targets; setup.py
// defines IWAE_NO_AMX_BUILD when the toolchain still refuses them.
#if defined(__x86_64__) && !defined(IWAE_NO_AMX_BUILD) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define IWAE_HAVE_AMX_BUILD 1
IWAE_DECLARE_KERNELS(kernel_amx)
namespace kernel_amx {
// dst = w (in x ld, panel layout) rounded to bfloat16 in the tiles' pairs
// of rows: round32(in) x round32(ld) values.
void pack_weight_pairs(const float* w, std::size_t in, std::size_t ld, std::uint16_t* dst);
// The same for PyTorch's row-major w (in x out) whose logical column
// source[n] sits at padded column n (-1: padding; round32(ld) entries), and
// for its transpose (ld x in_ld): round32(ld) x round32(in_ld) values. With
// blocked, source lists a two-part layer's columns in feature blocks (ld
// of them, a multiple of 64), and dst is laid out as Layer::w16_blocks.
void pack_weight_rows(const float* w, std::size_t in, std::size_t out,
                      const std::int32_t* source, std::size_t ld, std::uint16_t* dst,
                      bool blocked = false);
void pack_weight_columns(const float* w, std::size_t in, std::size_t out,
                         const std::int32_t* source, std::size_t ld, std::size_t in_ld,
                         std::uint16_t* dst);
void bf16_matmul(const float* A, const float* B, std::size_t M, std::size_t K, std::size_t N,
                 float* C, std::uint16_t* scratch_a, std::uint16_t* scratch_b);
}
#endif

}  // namespace detail
}  // namespace iwae
