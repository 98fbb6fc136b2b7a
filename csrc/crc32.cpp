// CRC-32 of the zip format (zlib's crc32: reflected polynomial 0xEDB88320),
// for the model file's integrity check (pyod_odim/model_file.py).
//
// On x86-64 CPUs with PCLMULQDQ the buffer is folded 64 bytes at a time
// with carry-less multiplications (Intel, "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ Instruction", 2009; the constants are those of
// zlib's and Linux's implementations), several times faster than zlib's
// table-driven loop; elsewhere a byte-wise table loop gives the same value.
// Every library header comes before the target attribute, so no library
// code is compiled for PCLMULQDQ.
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CRC32_HAVE_CLMUL_BUILD 1
#endif

namespace py = pybind11;

namespace {

struct Table {
  uint32_t entry[256];
  Table() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      entry[i] = c;
    }
  }
};

const Table kTable;

// ``crc`` is the register (the complemented running value).
uint32_t crc_bytes(uint32_t crc, const unsigned char* p, size_t n) {
  for (; n; --n, ++p) crc = kTable.entry[(crc ^ *p) & 0xFFu] ^ (crc >> 8);
  return crc;
}

#ifdef CRC32_HAVE_CLMUL_BUILD
alignas(16) const uint64_t kK1K2[2] = {0x0154442bd4ULL, 0x01c6e41596ULL};
alignas(16) const uint64_t kK3K4[2] = {0x01751997d0ULL, 0x00ccaa009eULL};
alignas(16) const uint64_t kK5K0[2] = {0x0163cd6124ULL, 0x0000000000ULL};
alignas(16) const uint64_t kPoly[2] = {0x01db710641ULL, 0x01f7011641ULL};

// The register after ``len`` bytes: ``len`` >= 64 and a multiple of 16.
__attribute__((target("pclmul,sse4.1"))) uint32_t crc_fold(uint32_t crc, const unsigned char* buf,
                                                          size_t len) {
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;
  x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x00));
  x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x10));
  x3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x20));
  x4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(crc)));
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(kK1K2));
  buf += 64;
  len -= 64;
  // Four 128-bit lanes folded forward 512 bits at a time.
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    y5 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x00));
    y6 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x10));
    y7 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x20));
    y8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x30));
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
    buf += 64;
    len -= 64;
  }
  // The four lanes into one.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(kK3K4));
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x4), x5);
  // The remaining 16-byte blocks.
  while (len >= 16) {
    x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf));
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    buf += 16;
    len -= 16;
  }
  // 128 bits to 64.
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_srli_si128(x1, 8);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kK5K0));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, x3);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  // Barrett reduction to 32 bits.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(kPoly));
  x2 = _mm_and_si128(x1, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
  x2 = _mm_and_si128(x2, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}

bool clmul_supported() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  return has;
}
#else
bool clmul_supported() { return false; }
#endif

uint32_t crc32(uint32_t value, const unsigned char* p, size_t n) {
  uint32_t crc = ~value;
#ifdef CRC32_HAVE_CLMUL_BUILD
  if (n >= 64 && clmul_supported()) {
    const size_t folded = n & ~static_cast<size_t>(15);
    crc = crc_fold(crc, p, folded);
    p += folded;
    n -= folded;
  }
#endif
  return ~crc_bytes(crc, p, n);
}

}  // namespace

PYBIND11_MODULE(_crc32, m) {
  m.doc() = "CRC-32 of the zip format, as zlib.crc32 computes it (PCLMULQDQ where the CPU has it).";
  m.def(
      "crc32",
      [](py::buffer data, uint32_t value) {
        py::buffer_info info = data.request();
        if (info.ndim != 1 || info.strides[0] != info.itemsize) {
          throw std::invalid_argument("crc32 needs a contiguous one-dimensional buffer");
        }
        const auto* p = static_cast<const unsigned char*>(info.ptr);
        const size_t n = static_cast<size_t>(info.size) * static_cast<size_t>(info.itemsize);
        py::gil_scoped_release release;
        return crc32(value, p, n);
      },
      py::arg("data"), py::arg("value") = 0,
      "``zlib.crc32(data, value)`` of a contiguous one-dimensional buffer.");
  m.def("uses_clmul", &clmul_supported, "Whether this CPU folds with PCLMULQDQ.");
}
