// Batched two-component 1-D Gaussian mixture with a Wasserstein-type
// distance between the fitted components (ODIM's checkpoint selector).
//
// Pure C++17, no Python. Each row of an (M, n) array is min-max normalized
// to [0, 1], initialized by 1-D 2-means (Lloyd) and fitted by EM that
// mirrors scikit-learn's GaussianMixture(n_components=2). Rows are
// independent and each is fitted by one thread from start to end, so the
// results are bitwise identical for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gmm2 {

// Distance between the two fitted normals N(mu0, var0) and N(mu1, var1).
enum class Distance {
  kSigma = 0,     // (mu0 - mu1)^2 + (sd0 - sd1)^2, squared 2-Wasserstein
  kVariance = 1,  // (mu0 - mu1)^2 + (var0 - var1)^2, the authors' code
};

struct Options {
  double tol = 1e-3;       // stop when the mean log-likelihood moves less
  int max_iter = 100;      // EM iterations at most
  double reg_covar = 1e-6; // added to every variance
  Distance distance = Distance::kSigma;
  int n_threads = 0;       // <= 0: OpenMP's default; ignored without OpenMP
};

// Caller-owned output buffers for M rows, C order. Component 0 always has
// the smaller mean.
struct Outputs {
  double* weights;         // (M, 2)
  double* means;           // (M, 2)
  double* variances;       // (M, 2)
  double* log_likelihood;  // (M,) mean log-likelihood of the returned fit
  std::int32_t* n_iter;    // (M,) EM iterations run, 0 for constant rows
  bool* converged;         // (M,)
  double* distance;        // (M,)
};

// Fits every row of the C-contiguous (m, n) array `data`. The values must
// be finite (the caller validates); m and n must be positive.
void fit_rows(const double* data, std::size_t m, std::size_t n,
              const Options& options, const Outputs& out);
void fit_rows(const float* data, std::size_t m, std::size_t n,
              const Options& options, const Outputs& out);

// Distance between N(mu0, var0) and N(mu1, var1); symmetric, >= 0.
double normal_pair_distance(double mu0, double var0, double mu1, double var1,
                            Distance distance);

// True when the kernel was compiled with OpenMP.
bool openmp_enabled();

// Threads a call with n_threads <= 0 would use (1 without OpenMP).
int default_threads();

// Which E-step code path this build runs on this CPU: "avx2", "sse2/neon"
// (two-lane packs) or "scalar".
const char* pack_kind();

}  // namespace gmm2
