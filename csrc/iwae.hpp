// Fused CPU kernels of ODIM's ensemble IWAE: no-grad scoring and one
// training update (forward and backward), for every member at once.
//
// Pure C++17, no Python and no PyTorch. The caller hands over the stacked
// parameters of M members as float32 arrays in PyTorch's layout: weights
// (M, in, out), biases (M, 1, out), batch-normalization running statistics
// (M, 1, width). The kernels repack each member's layers into zero-padded
// row-major blocks (widths rounded up to 8 floats) and run one member on one
// thread from start to end, so results do not depend on the thread count.
//
// The network (see pyod_odim/network.py, the PyTorch twin):
//   encoder  x -> [Dense -> BatchNorm? -> LeakyReLU(0.01)]* -> Dense head
//            head = [mu | raw log-variance], log-variance clamped to [-6, 2]
//   sample   z_k = mu + exp(logvar / 2) * eps_k
//   decoder  z -> [Dense -> BatchNorm? -> LeakyReLU(0.01)]* -> Dense output,
//            by the likelihood (Likelihood below):
//            Gaussian: [mean logits | raw log-variance] per feature,
//              mean = sigmoid, log-variance clamped to [-6, 2];
//            rectified Gaussian max(0, N(mean, sd^2)): [mean | raw
//              log-variance] per feature, the mean unconstrained, the
//              log-variance clamped to [-6, 2]; a value x <= 0 has
//              probability Phi(-mean / sd), a positive one the normal density;
//            Bernoulli: one logit per feature
//   log w_k  = log p(x | z_k) + log p(z_k) - log q(z_k | x)
#pragma once

#include <cstddef>
#include <vector>

#include "iwae_likelihood.hpp"

namespace iwae {

// Layer shapes of one ensemble; every member has the same.
struct Shape {
  std::size_t n_members = 0;
  std::size_t n_features = 0;             // d
  std::size_t latent = 0;                 // L
  std::vector<std::size_t> enc_hidden;    // encoder widths, input side first
  std::vector<std::size_t> dec_hidden;    // decoder widths, latent side first
  Likelihood likelihood = Likelihood::kGaussian;
  bool batch_norm = false;

  // Outputs of the decoder's last layer: d for Bernoulli, else 2 d.
  std::size_t n_outputs() const {
    return likelihood == Likelihood::kBernoulli ? n_features : 2 * n_features;
  }
};

// Parameters in PyTorch's stacked layout, all float32 and C-contiguous.
// enc_w/enc_b hold the hidden encoder layers and then the head; dec_w/dec_b
// the hidden decoder layers and then the output layer. bn_mean/bn_var hold
// one array per hidden layer (encoder first) when batch_norm is set.
struct Params {
  std::vector<const float*> enc_w, enc_b, dec_w, dec_b;
  std::vector<float*> bn_mean, bn_var;  // written by training (running stats)
};

// Where train_step writes the gradients: one array per weight and bias,
// same shapes as Params, overwritten (not accumulated).
struct Grads {
  std::vector<float*> enc_w, enc_b, dec_w, dec_b;
};

// One update's minibatch: rows (M, B, d) and noise (M, K, B, L) per member,
// float32, C-contiguous. Known outliers (semi-supervised mode) come as a
// second batch that enters a CUBO term instead of the IWAE bound.
struct Batch {
  const float* x = nullptr;
  const float* eps = nullptr;
  std::size_t rows = 0;     // B
  std::size_t samples = 0;  // K
};

struct CuboTerm {
  Batch batch;              // rows == 0: no labeled batch
  double weight = 1.0;      // gamma
  double order = 2.0;       // u > 1
};

// Negative IWAE bound of every row under every member, with batch
// normalization in evaluation mode (running statistics). x is (n, d);
// eps (M, K, L) holds one set of K draws per member shared by all rows, so
// a row's loss does not depend on the rows scored with it. losses is
// (M, n). n_threads <= 0 uses OpenMP's default.
// bf16_products: every layer's products in bfloat16 with float32
// accumulation on the AMX tiles (the weights, batch normalization folded
// in, rounded once per call); needs bf16_available().
void score(const Shape& shape, const Params& params, const float* x,
           std::size_t n, const float* eps, std::size_t n_samples,
           double* losses, int n_threads, bool bf16_products = false);

// The scoring pass with each row's loss split by feature. Under the
// normalized weights w~_k = softmax_k(log w_k) of the draws that score the
// row, feature j's share is its expected negative log-likelihood
//   c_j = sum_k w~_k (-log p(x_j | z_k)),
// and the rest is
//   r = sum_k w~_k (log q(z_k | x) - log p(z_k)) - H(w~) + log K,
// H(w~) = -sum_k w~_k log w~_k, so that sum_j c_j + r is the loss of score.
// contribs is (M, n, d), rest (M, n); the other arguments as for score.
void contributions(const Shape& shape, const Params& params, const float* x,
                   std::size_t n, const float* eps, std::size_t n_samples,
                   float* contribs, double* rest, int n_threads, bool bf16_products = false);

// One training update's forward and backward pass for every member:
// objective_m = mean_b IWAE loss of batch row b
//             + weight * mean_l CUBO_u of labeled row l.
// Batch normalization uses the unlabeled batch's statistics for both
// batches (the gradient flows through those statistics from both terms) and
// updates the running statistics in place from the unlabeled batch
// (momentum 0.1, unbiased running variance). Gradients of objective_m go
// to grads; objective_m to objectives (M,).
//
// bf16_products runs every layer's products (forward, weight gradient and
// input gradient) in bfloat16 with float32 accumulation on the AMX tiles; it needs bf16_available(), and everything
// else stays float32.
void train_step(const Shape& shape, const Params& params, const Batch& batch,
                const CuboTerm& cubo, const Grads& grads, double* objectives,
                int n_threads, bool bf16_products = false);

bool openmp_enabled();
int default_threads();
// Code path of the hot loops on this CPU: "avx512+amx" (the AMX build, for
// float32 work too: the same bits as "avx2+fma", its likelihood and
// products in 16-float packs), "avx2+fma" or "generic". bfloat16 updates always run the AMX
// build, where bf16_available().
const char* isa();

// Whether the AVX2 build may be used where the CPU has it (default true);
// false forces the generic build, for tests that compare the two.
void allow_avx2(bool allowed);

// Whether the AMX build may run float32 work where the CPU has it (default
// true); false keeps float32 work on the AVX2 build, for tests that compare
// the two.
void allow_avx512(bool allowed);

// Whether this build and CPU can run bf16_products: AVX-512F, AVX512-BF16,
// AMX-TILE and AMX-BF16 by cpuid, their register state enabled by the
// operating system (XCR0), and, on Linux, the tile data permission granted.
bool bf16_available();

// Frees the scratch that train_step keeps, in the calling thread, from one
// update to the next (call it when the updates are done).
void release_scratch();

// The product clock, for benchmarks: start_product_clock() sets it to zero
// and starts it; stop_product_clock() stops it and returns the seconds that
// bfloat16 products on the tiles took meanwhile, in any thread (their
// operands' rounding and packing included, the rest of an update not).
// Above 6,144 features a training update's output layer forms its outputs
// a block at a time between likelihood steps; the clock times each block's
// products alone, so they no longer overlap those steps while it runs.
void start_product_clock();
double stop_product_clock();

// C (M x N) = A (M x K) B (K x N), row-major float32, with the products of
// bf16_products (operands rounded to bfloat16, float32 accumulation on the
// AMX tiles); for tests and the benchmarks. Needs bf16_available().
void bf16_matmul(const float* A, const float* B, std::size_t M, std::size_t K, std::size_t N,
                 float* C);

}  // namespace iwae
