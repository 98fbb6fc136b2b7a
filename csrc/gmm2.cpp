// Batched two-component 1-D Gaussian mixture; see gmm2.hpp.
//
// Per row: min-max normalize, 2-means (Lloyd) for hard labels, then EM as in
// scikit-learn's GaussianMixture: the E-step of parameters theta_t gives the
// mean log-likelihood l_t and the M-step gives theta_{t+1}; EM stops once
// |l_t - l_{t-1}| < tol. Each E-step is fused with the sums of the M-step in
// one pass over the data. Moments are accumulated about the current means
// (shifted sums) so that variances keep their accuracy without a second pass.
#include "gmm2.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "openmp_info.hpp"

namespace gmm2 {
namespace {

// Sums run over fixed blocks, added in block order (blocked summation keeps
// the rounding error small on long rows).
constexpr std::size_t kBlock = 4096;
// Below this many values in all a call runs on one thread: waking a team
// costs more than the work.
constexpr std::size_t kMinParallelValues = std::size_t{1} << 15;
// Points whose (1 + t) factors share one log in the log-likelihood sum:
// each factor is in [1, 2] and a lane multiplies at most 256 of them, far
// from overflow.
constexpr std::size_t kLogChunk = 256;
constexpr int kLloydMaxIter = 100;
constexpr double kLog2Pi = 1.8378770664093454835606594728112;
// scikit-learn adds 10 * eps to every component's effective count.
constexpr double kCountGuard = 10.0 * std::numeric_limits<double>::epsilon();
// Keeps 1 / variance finite when reg_covar is 0 and a component collapses.
constexpr double kMinVariance = 1e-30;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Params {
  double w[2];
  double mu[2];
  double var[2];
};

// Per-component constants of the E-step: log N(x) = log_norm - half_prec*d^2.
struct Estep {
  double mu[2];
  double half_prec[2];
  double log_norm[2];
};

struct Range {
  double lo = kInf;
  double hi = -kInf;
  Range& operator+=(const Range& o) {
    lo = std::min(lo, o.lo);
    hi = std::max(hi, o.hi);
    return *this;
  }
};

struct Sum {
  double value = 0.0;
  Sum& operator+=(const Sum& o) {
    value += o.value;
    return *this;
  }
};

// Points at or below a threshold ("low") and above it ("high").
struct SplitSums {
  std::size_t count_low = 0;
  double sum_low = 0.0;
  double sum_high = 0.0;
  SplitSums& operator+=(const SplitSums& o) {
    count_low += o.count_low;
    sum_low += o.sum_low;
    sum_high += o.sum_high;
    return *this;
  }
};

// Responsibility-weighted moments of d = x - shift_k per component:
// n = sum r, a = sum r d, b = sum r d^2.
struct Moments {
  double n[2] = {0.0, 0.0};
  double a[2] = {0.0, 0.0};
  double b[2] = {0.0, 0.0};
  Moments& operator+=(const Moments& o) {
    for (int k = 0; k < 2; ++k) {
      n[k] += o.n[k];
      a[k] += o.a[k];
      b[k] += o.b[k];
    }
    return *this;
  }
};

struct EmSums {
  double ll = 0.0;  // sum of per-point log-likelihoods
  Moments mo;
  EmSums& operator+=(const EmSums& o) {
    ll += o.ll;
    mo += o.mo;
    return *this;
  }
};

struct RowFit {
  Params p;
  double ll;
  int n_iter;
  bool converged;
};

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int resolve_threads(int requested) {
  if (requested > 0 && openmp_enabled()) return requested;
  return default_threads();
}

// Runs fn(begin, end) on every block and adds the results in block order.
template <class Sums, class BlockFn>
Sums reduce_blocks(std::size_t n, BlockFn&& fn) {
  Sums total{};
  for (std::size_t b = 0; b < n; b += kBlock) total += fn(b, std::min(n, b + kBlock));
  return total;
}

// ---------------------------------------------------------------- packs

// The hot loops run on packs of points. With GCC or Clang a pack is a
// vector-extension type: two doubles (SSE2 / NEON), or four where the CPU
// has AVX2 (chosen at run time, see use_avx2). Other compilers run the same
// templates on plain doubles. Lane j of a pack accumulates the points i with
// i % width == j of a block; lanes are added in order. The rounding thus
// depends on the pack width (the machine), never on the thread count.
// Define GMM2_NO_PACKS or GMM2_NO_AVX2 to build (and test) the plainer paths.
#if defined(__GNUC__) && !defined(GMM2_NO_PACKS)
#define GMM2_PACKS 1
typedef double Pack2 __attribute__((vector_size(16)));
typedef std::uint64_t UPack2 __attribute__((vector_size(16)));
#if (defined(__x86_64__) || defined(__i386__)) && !defined(GMM2_NO_AVX2)
#define GMM2_AVX2 1
typedef double Pack4 __attribute__((vector_size(32)));
typedef std::uint64_t UPack4 __attribute__((vector_size(32)));
#endif
#endif

// Helpers are forced inline so that, inside the AVX2 entry points, they are
// compiled for AVX2 too.
#if defined(__GNUC__)
#define GMM2_INLINE inline __attribute__((always_inline))
// The packs never cross a non-inlined call, so the ABI note is moot.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#else
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#else
#define GMM2_INLINE inline
#endif

#ifdef GMM2_PACKS
typedef Pack2 BasePack;  // pack of the portable code path
#else
typedef double BasePack;
#endif

// The unsigned integer pack with the lanes of P.
template <class P>
struct Unsigned {
  using type = std::uint64_t;
};
#ifdef GMM2_PACKS
template <>
struct Unsigned<Pack2> {
  using type = UPack2;
};
#endif
#ifdef GMM2_AVX2
template <>
struct Unsigned<Pack4> {
  using type = UPack4;
};
#endif

template <class P>
constexpr std::size_t width() {
  return sizeof(P) / sizeof(double);
}

// P{} + c broadcasts c; for a plain double it is c itself.
template <class P>
GMM2_INLINE P splat(double c) {
  return P{} + c;
}

template <class To, class From>
GMM2_INLINE To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "sizes differ");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

template <class P>
GMM2_INLINE P load(const double* x) {
  P v;
  std::memcpy(&v, x, sizeof v);
  return v;
}

template <class P>
struct Lanes {
  double v[width<P>()];
};

template <class P>
GMM2_INLINE Lanes<P> lanes(const P& p) {
  return bit_cast<Lanes<P>>(p);
}

// Sum of the lanes of p, lane 0 first.
template <class P>
GMM2_INLINE double lane_sum(const P& p) {
  const Lanes<P> l = lanes(p);
  double s = 0.0;
  for (std::size_t j = 0; j < width<P>(); ++j) s += l.v[j];
  return s;
}

// p with c added to, or multiplied into, lane 0.
template <class P>
GMM2_INLINE P add_first_lane(const P& p, double c) {
  Lanes<P> l = lanes(p);
  l.v[0] += c;
  return bit_cast<P>(l);
}

template <class P>
GMM2_INLINE P mul_first_lane(const P& p, double c) {
  Lanes<P> l = lanes(p);
  l.v[0] *= c;
  return bit_cast<P>(l);
}

// exp(y) for y <= 0, within about 1 ulp: y = k ln2 + r with |r| <= ln2 / 2
// (Cody-Waite, ln2 split so that k * hi is exact), a degree-13 Taylor
// polynomial for exp(r) and 2^k written into the exponent bits. Branch-free
// so that it runs on packs. Below exp(-708) the result is flushed to 0
// rather than made subnormal.
template <class P>
GMM2_INLINE P exp_nonpositive(const P& y) {
  using U = typename Unsigned<P>::type;
  const P floor = splat<P>(-708.0);
  const P round = splat<P>(6755399441055744.0);  // 1.5 * 2^52
  const P yc = y < floor ? floor : y;
  const P shifted = yc * 1.4426950408889634074 + round;  // k in the low bits
  const P k = shifted - round;
  const P r = (yc - k * 6.93147180369123816490e-01)  // ln2, 32 low bits zero
              - k * 1.90821492927058770002e-10;     // the rest of ln2
  P p = splat<P>(1.0 / 6227020800.0);               // 1 / 13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // k in [-1021, 0]: the biased exponent k + 1023 fits in 11 bits.
  const U biased = bit_cast<U>(shifted) - bit_cast<U>(round) + 1023;
  const P scale = bit_cast<P>(U(biased << 52));
  return y < floor ? splat<P>(0.0) : p * scale;
}

// A lone double (a block's tail, or builds without packs) uses the library's
// exp: a table-driven scalar exp beats the long polynomial above.
GMM2_INLINE double exp_nonpositive(const double& y) { return std::exp(y); }

#ifdef GMM2_AVX2
// Whether this CPU runs the AVX2 entry points (checked once).
bool use_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

// ---------------------------------------------------------------- normalize

template <class T>
Range row_range(const T* raw, std::size_t n) {
  return reduce_blocks<Range>(n, [raw](std::size_t b, std::size_t e) {
    Range r;
    for (std::size_t i = b; i < e; ++i) {
      const double v = static_cast<double>(raw[i]);
      r.lo = std::min(r.lo, v);
      r.hi = std::max(r.hi, v);
    }
    return r;
  });
}

// Writes (x - min) / (max - min) into out, shape (n,). Returns false for a
// constant row. When max - min overflows, everything is halved first
// (exact), which keeps the span finite.
template <class T>
bool normalize_row(const T* raw, std::size_t n, double* out) {
  const Range r = row_range(raw, n);
  if (!(r.hi > r.lo)) return false;
  double scale = 1.0;
  double lo = r.lo;
  double span = r.hi - r.lo;
  if (!std::isfinite(span)) {
    scale = 0.5;
    lo = 0.5 * r.lo;
    span = 0.5 * r.hi - 0.5 * r.lo;
  }
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = (scale * static_cast<double>(raw[i]) - lo) / span;
  }
  return true;
}

// ---------------------------------------------------------------- 2-means

// Lane-wise sums of split_at; counts are exact in doubles below 2^53.
template <class P>
struct SplitLanes {
  P count = splat<P>(0.0);
  P sum_low = splat<P>(0.0);
  P sum_high = splat<P>(0.0);

  GMM2_INLINE void add(const P& x, const P& t) {
    const P zero = splat<P>(0.0);
    const auto low = x <= t;
    count += low ? splat<P>(1.0) : zero;
    sum_low += low ? x : zero;
    sum_high += low ? zero : x;
  }

  GMM2_INLINE SplitSums total() const {
    return SplitSums{static_cast<std::size_t>(lane_sum(count)),
                     lane_sum(sum_low), lane_sum(sum_high)};
  }
};

// Points of [b, e) at or below t, and their sums on either side.
SplitSums split_block(const double* x, std::size_t b, std::size_t e, double t) {
  constexpr std::size_t w = width<BasePack>();
  SplitLanes<BasePack> acc;
  const BasePack tv = splat<BasePack>(t);
  std::size_t i = b;
  for (; i + w <= e; i += w) acc.add(load<BasePack>(x + i), tv);
  SplitSums s = acc.total();
  for (; i < e; ++i) {  // fewer than w points left
    const bool low = x[i] <= t;
    s.count_low += low ? 1 : 0;
    s.sum_low += low ? x[i] : 0.0;
    s.sum_high += low ? 0.0 : x[i];
  }
  return s;
}

SplitSums split_at(const double* x, std::size_t n, double t) {
  return reduce_blocks<SplitSums>(n, [x, t](std::size_t b, std::size_t e) {
    return split_block(x, b, e, t);
  });
}

bool both_sides_used(const SplitSums& s, std::size_t n) {
  return s.count_low > 0 && s.count_low < n;
}

double low_center(const SplitSums& s) {
  return s.sum_low / static_cast<double>(s.count_low);
}

double high_center(const SplitSums& s, std::size_t n) {
  return s.sum_high / static_cast<double>(n - s.count_low);
}

struct Split {
  double threshold;
  SplitSums sums;
};

// 1-D 2-means by Lloyd's iteration: start from the split at the row mean,
// move the threshold to the midpoint of the two centers until the partition
// stops changing. A row normalized to [0, 1] always splits at 0.5, the
// fallback should rounding put the mean on an edge.
Split two_means(const double* x, std::size_t n) {
  const double mean =
      reduce_blocks<Sum>(n, [x](std::size_t b, std::size_t e) {
        Sum s;
        for (std::size_t i = b; i < e; ++i) s.value += x[i];
        return s;
      }).value / static_cast<double>(n);
  Split cur{mean, split_at(x, n, mean)};
  if (!both_sides_used(cur.sums, n)) cur = Split{0.5, split_at(x, n, 0.5)};
  for (int it = 0; it < kLloydMaxIter; ++it) {
    const double t = 0.5 * (low_center(cur.sums) + high_center(cur.sums, n));
    const SplitSums next = split_at(x, n, t);
    // Nested partitions: an unchanged count means an unchanged partition.
    if (!both_sides_used(next, n) || next.count_low == cur.sums.count_low) break;
    cur = Split{t, next};
  }
  return cur;
}

// Moments of the hard 2-means labels about the two centers.
Moments hard_moments(const double* x, std::size_t n, double t,
                     const double shift[2]) {
  const double s0 = shift[0];
  const double s1 = shift[1];
  return reduce_blocks<Moments>(n, [=](std::size_t b, std::size_t e) {
    Moments m;
    for (std::size_t i = b; i < e; ++i) {
      const int k = x[i] <= t ? 0 : 1;
      const double d = x[i] - (k == 0 ? s0 : s1);
      m.n[k] += 1.0;
      m.a[k] += d;
      m.b[k] += d * d;
    }
    return m;
  });
}

// ---------------------------------------------------------------- EM

// M-step from moments about `shift`: means and regularized variances exactly
// as scikit-learn computes them; weights are left as the effective counts.
Params estimate(const Moments& mo, const double shift[2], double reg_covar) {
  Params p{};
  for (int k = 0; k < 2; ++k) {
    const double nk = mo.n[k] + kCountGuard;
    const double mu = (shift[k] * mo.n[k] + mo.a[k]) / nk;
    const double delta = mu - shift[k];
    // sum r (x - mu)^2 = b - 2 delta a + delta^2 n, with x - mu = d - delta
    const double sq = mo.b[k] - 2.0 * delta * mo.a[k] + delta * delta * mo.n[k];
    const double var = std::max(sq / nk, 0.0) + reg_covar;
    p.w[k] = nk;
    p.mu[k] = mu;
    p.var[k] = std::max(var, kMinVariance);
  }
  return p;
}

Params weights_over(Params p, double total) {
  p.w[0] /= total;
  p.w[1] /= total;
  return p;
}

Estep prepare(const Params& p) {
  Estep e{};
  for (int k = 0; k < 2; ++k) {
    e.mu[k] = p.mu[k];
    e.half_prec[k] = 0.5 / p.var[k];
    e.log_norm[k] = std::log(p.w[k]) - 0.5 * (kLog2Pi + std::log(p.var[k]));
  }
  return e;
}

// What points add to the E-step sums. With t = exp(-|l0 - l1|),
// log(p0 + p1) = max(l0, l1) + log(1 + t) and the responsibilities are
// 1 / (1 + t) and t / (1 + t).
template <class P>
struct PointTerms {
  P top;    // max(l0, l1)
  P denom;  // 1 + t
  P r0, r1, d0, d1, sq0, sq1;
};

template <class P>
GMM2_INLINE PointTerms<P> point_terms(const P& x, const Estep& es) {
  PointTerms<P> p;
  p.d0 = x - es.mu[0];
  p.d1 = x - es.mu[1];
  p.sq0 = p.d0 * p.d0;
  p.sq1 = p.d1 * p.d1;
  const P l0 = es.log_norm[0] - es.half_prec[0] * p.sq0;
  const P l1 = es.log_norm[1] - es.half_prec[1] * p.sq1;
  const P gap = l0 - l1;
  const auto first = gap >= splat<P>(0.0);
  const P t = exp_nonpositive(first ? -gap : gap);
  p.denom = 1.0 + t;
  const P big = 1.0 / p.denom;
  const P small = t * big;
  p.top = first ? l0 : l1;
  p.r0 = first ? big : small;
  p.r1 = first ? small : big;
  return p;
}

// Lane-wise accumulators of em_block.
template <class P>
struct EmLanes {
  P ll = splat<P>(0.0);
  P prod = splat<P>(1.0);  // pending (1 + t) factors of ll
  P n0 = splat<P>(0.0), n1 = splat<P>(0.0);
  P a0 = splat<P>(0.0), a1 = splat<P>(0.0);
  P b0 = splat<P>(0.0), b1 = splat<P>(0.0);

  GMM2_INLINE void add(const PointTerms<P>& p) {
    ll += p.top;
    prod *= p.denom;
    n0 += p.r0;
    n1 += p.r1;
    a0 += p.r0 * p.d0;
    a1 += p.r1 * p.d1;
    b0 += p.r0 * p.sq0;
    b1 += p.r1 * p.sq1;
  }

  // A single point (a block's tail) goes to lane 0.
  GMM2_INLINE void add_tail(const PointTerms<double>& p) {
    ll = add_first_lane(ll, p.top);
    prod = mul_first_lane(prod, p.denom);
    n0 = add_first_lane(n0, p.r0);
    n1 = add_first_lane(n1, p.r1);
    a0 = add_first_lane(a0, p.r0 * p.d0);
    a1 = add_first_lane(a1, p.r1 * p.d1);
    b0 = add_first_lane(b0, p.r0 * p.sq0);
    b1 = add_first_lane(b1, p.r1 * p.sq1);
  }

  // Moves the pending factors into ll: one log per lane and chunk.
  GMM2_INLINE void flush_logs() {
    Lanes<P> l = lanes(ll);
    const Lanes<P> pr = lanes(prod);
    for (std::size_t j = 0; j < width<P>(); ++j) l.v[j] += std::log(pr.v[j]);
    ll = bit_cast<P>(l);
    prod = splat<P>(1.0);
  }

  GMM2_INLINE EmSums total() const {
    EmSums s;
    s.ll = lane_sum(ll);
    s.mo.n[0] = lane_sum(n0);
    s.mo.n[1] = lane_sum(n1);
    s.mo.a[0] = lane_sum(a0);
    s.mo.a[1] = lane_sum(a1);
    s.mo.b[0] = lane_sum(b0);
    s.mo.b[1] = lane_sum(b1);
    return s;
  }
};

// E-step over [b, e): sum of log-likelihoods and the M-step moments about
// the current means. Logs of (1 + t) are taken once per kLogChunk points.
template <class P>
GMM2_INLINE EmSums em_block_packed(const double* x, std::size_t b,
                                   std::size_t e, const Estep& es) {
  constexpr std::size_t w = width<P>();
  static_assert(kLogChunk % w == 0, "chunks hold whole packs");
  EmLanes<P> acc;
  std::size_t i = b;
  for (; i + kLogChunk <= e; i += kLogChunk) {
    for (std::size_t k = 0; k < kLogChunk; k += w) {
      acc.add(point_terms(load<P>(x + i + k), es));
    }
    acc.flush_logs();
  }
  for (; i + w <= e; i += w) acc.add(point_terms(load<P>(x + i), es));
  for (; i < e; ++i) acc.add_tail(point_terms(x[i], es));
  acc.flush_logs();
  return acc.total();
}

#ifdef GMM2_AVX2
__attribute__((target("avx2"))) EmSums em_block_avx2(const double* x,
                                                     std::size_t b,
                                                     std::size_t e,
                                                     const Estep& es) {
  return em_block_packed<Pack4>(x, b, e, es);
}
#endif

EmSums em_block(const double* x, std::size_t b, std::size_t e,
                const Estep& es) {
#ifdef GMM2_AVX2
  if (use_avx2()) return em_block_avx2(x, b, e, es);
#endif
  return em_block_packed<BasePack>(x, b, e, es);
}

EmSums em_pass(const double* x, std::size_t n, const Params& p) {
  const Estep es = prepare(p);
  return reduce_blocks<EmSums>(n, [x, &es](std::size_t b, std::size_t e) {
    return em_block(x, b, e, es);
  });
}

RowFit ordered(RowFit f) {
  if (f.p.mu[0] > f.p.mu[1]) {
    std::swap(f.p.w[0], f.p.w[1]);
    std::swap(f.p.mu[0], f.p.mu[1]);
    std::swap(f.p.var[0], f.p.var[1]);
  }
  return f;
}

// Fits one normalized row x, shape (n,), with at least two distinct values.
RowFit fit_normalized(const double* x, std::size_t n, const Options& o) {
  const Split split = two_means(x, n);
  const double centers[2] = {low_center(split.sums),
                             high_center(split.sums, n)};
  const Moments hard = hard_moments(x, n, split.threshold, centers);
  // scikit-learn divides the initial counts by n, later ones by their sum.
  RowFit fit{weights_over(estimate(hard, centers, o.reg_covar),
                          static_cast<double>(n)),
             0.0, 0, false};
  double prev = -kInf;
  for (int it = 0; it < o.max_iter; ++it) {
    const EmSums s = em_pass(x, n, fit.p);
    const Params next = estimate(s.mo, fit.p.mu, o.reg_covar);
    fit.p = weights_over(next, next.w[0] + next.w[1]);
    fit.n_iter = it + 1;
    const double ll = s.ll / static_cast<double>(n);
    if (std::fabs(ll - prev) < o.tol) {
      fit.converged = true;
      break;
    }
    prev = ll;
  }
  // Report the log-likelihood of the parameters returned, not of the
  // previous ones (scikit-learn's score(), not its lower_bound_).
  fit.ll = em_pass(x, n, fit.p).ll / static_cast<double>(n);
  return ordered(fit);
}

// A constant row: two identical components at 0 (its normalized value).
RowFit constant_fit(double reg_covar) {
  const double var = std::max(reg_covar, kMinVariance);
  const Params p{{0.5, 0.5}, {0.0, 0.0}, {var, var}};
  return RowFit{p, -0.5 * (kLog2Pi + std::log(var)), 0, true};
}

void store(const Outputs& out, std::size_t r, const RowFit& f, Distance d) {
  for (int k = 0; k < 2; ++k) {
    out.weights[2 * r + k] = f.p.w[k];
    out.means[2 * r + k] = f.p.mu[k];
    out.variances[2 * r + k] = f.p.var[k];
  }
  out.log_likelihood[r] = f.ll;
  out.n_iter[r] = static_cast<std::int32_t>(f.n_iter);
  out.converged[r] = f.converged;
  out.distance[r] = normal_pair_distance(f.p.mu[0], f.p.var[0], f.p.mu[1],
                                         f.p.var[1], d);
}

// Normalizes row r into buf, shape (n,), fits it and stores the result.
template <class T>
void fit_one(const T* raw, std::size_t n, double* buf, const Options& o,
             const Outputs& out, std::size_t r) {
  const RowFit f = normalize_row(raw, n, buf)
                       ? fit_normalized(buf, n, o)
                       : constant_fit(o.reg_covar);
  store(out, r, f, o.distance);
}

// Threads worth using for m rows of n values: one per row at most, and one
// for small inputs.
int plan_threads(int threads, std::size_t m, std::size_t n) {
  if (threads <= 1 || m * n < kMinParallelValues) return 1;
  return static_cast<int>(
      std::min(static_cast<std::size_t>(threads), m));
}

// Each row is fitted by one thread from start to end, so the results do not
// depend on the number of threads.
template <class T>
void fit_all(const T* data, std::size_t m, std::size_t n, const Options& o,
             const Outputs& out) {
  const int threads = plan_threads(resolve_threads(o.n_threads), m, n);
  if (threads == 1) {
    std::vector<double> buf(n);
    for (std::size_t r = 0; r < m; ++r) fit_one(data + r * n, n, buf.data(), o, out, r);
    return;
  }
  // Allocated up front: nothing may throw inside the parallel region.
  std::vector<double> bufs(static_cast<std::size_t>(threads) * n);
  const std::ptrdiff_t ms = static_cast<std::ptrdiff_t>(m);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::ptrdiff_t r = 0; r < ms; ++r) {
    double* buf = bufs.data() + static_cast<std::size_t>(thread_index()) * n;
    fit_one(data + static_cast<std::size_t>(r) * n, n, buf, o, out,
            static_cast<std::size_t>(r));
  }
}

}  // namespace

void fit_rows(const double* data, std::size_t m, std::size_t n,
              const Options& options, const Outputs& out) {
  fit_all(data, m, n, options, out);
}

void fit_rows(const float* data, std::size_t m, std::size_t n,
              const Options& options, const Outputs& out) {
  fit_all(data, m, n, options, out);
}

double normal_pair_distance(double mu0, double var0, double mu1, double var1,
                            Distance distance) {
  const double dm = mu0 - mu1;
  const double ds = distance == Distance::kSigma
                        ? std::sqrt(var0) - std::sqrt(var1)
                        : var0 - var1;
  return dm * dm + ds * ds;
}

bool openmp_enabled() { return odim_openmp::enabled(); }

int default_threads() { return odim_openmp::default_threads(); }

const char* pack_kind() {
#ifdef GMM2_AVX2
  if (use_avx2()) return "avx2";
#endif
#ifdef GMM2_PACKS
  return "sse2/neon";
#else
  return "scalar";
#endif
}

}  // namespace gmm2
