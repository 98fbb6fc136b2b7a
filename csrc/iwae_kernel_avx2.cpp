// The IWAE hot loops for x86-64 CPUs with AVX2 and FMA, chosen at run time
// (iwae.cpp). Every library header comes before the target switch, so no
// library code is compiled for AVX2 here.
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "iwae_plan.hpp"

#ifdef IWAE_HAVE_AVX2_BUILD
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define IWAE_KERNEL_NS kernel_avx2
#define IWAE_FMA 1
#include "iwae_kernel.inc"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // IWAE_HAVE_AVX2_BUILD
