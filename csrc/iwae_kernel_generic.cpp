// The IWAE hot loops for any CPU (SSE2 on x86-64, NEON on ARM): packs of 8
// floats split into the registers the target has; no fused multiply-add.
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "iwae_plan.hpp"

#define IWAE_KERNEL_NS kernel_generic
#define IWAE_FMA 0
#include "iwae_kernel.inc"
