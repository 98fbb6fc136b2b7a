// The decoder's distribution of one feature, shared by the kernels' public
// API (iwae.hpp) and their hot loops (iwae_plan.hpp); no library headers.
#pragma once

namespace iwae {

// pyod_odim.network.LIKELIHOODS: "gaussian", "rectified", "bernoulli".
enum class Likelihood { kGaussian, kRectified, kBernoulli };

}  // namespace iwae
