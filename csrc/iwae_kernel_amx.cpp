// The IWAE hot loops for x86-64 CPUs with AVX-512, AVX512-BF16 and AMX,
// chosen at run time (iwae.cpp) for training updates with bfloat16
// products: the wide products run on the AMX tiles (iwae_amx.inc), the rest
// as in the AVX2 build. Every library header comes before the target
// switch, so no library code is compiled for these extensions here.
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "iwae_normal_cdf.hpp"
#include "iwae_plan.hpp"

#ifdef IWAE_HAVE_AMX_BUILD
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(                                                        \
    __attribute__((target("avx2,fma,avx512f,avx512bf16,amx-tile,amx-bf16"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bf16,amx-tile,amx-bf16")
#endif

#define IWAE_KERNEL_NS kernel_amx
#define IWAE_FMA 1
#define IWAE_AMX 1
#include "iwae_kernel.inc"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // IWAE_HAVE_AMX_BUILD
