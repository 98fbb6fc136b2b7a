// What both extensions report about OpenMP, defined once.
#pragma once

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace odim_openmp {

// True when the extension was compiled with OpenMP.
inline bool enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// OpenMP's default team size (1 without OpenMP).
inline int default_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

}  // namespace odim_openmp
