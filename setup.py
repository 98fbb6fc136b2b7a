"""Build script for the optional compiled kernels.

* ``pyod_odim._gmm``: the GMM-2 selector; without it ``pyod_odim.gmm``
  falls back to NumPy (with a RuntimeWarning at import).
* ``pyod_odim._iwae``: fused CPU kernels of the IWAE ensemble (scoring,
  per-feature contributions and training updates; a generic, an AVX2+FMA
  and an AVX-512/AMX build of the hot loops, chosen at run time, the last
  for updates with bfloat16 products); without it
  ``pyod_odim.kernels`` reports itself unavailable and fits run on PyTorch
  alone.
* ``pyod_odim._crc32``: the CRC-32 that checks a model file as it loads;
  without it ``pyod_odim.model_file`` uses ``zlib.crc32`` (same value,
  slower).

Metadata lives in pyproject.toml. Every extension is optional: OpenMP is
tried first and dropped if the compiler rejects it, and an extension that
cannot be built at all leaves the install working.

Only setuptools and pybind11 are imported here, so the build works in an
isolated environment.
"""

from pybind11.setup_helpers import Pybind11Extension
from pybind11.setup_helpers import build_ext as _pybind11_build_ext
from setuptools import setup

try:  # setuptools >= 59 re-exports the distutils errors
    from setuptools.errors import CCompilerError, CompileError, LinkError
except ImportError:  # pragma: no cover - old setuptools
    from distutils.errors import CCompilerError, CompileError, LinkError

_BUILD_ERRORS = (CCompilerError, CompileError, LinkError, OSError)

# -ffp-contract=off: the compiler fuses no multiply-add on its own, so the
# only fused multiply-adds are those the AVX2 build of the IWAE kernels
# writes out (csrc/iwae_kernel.inc), and each build rounds the same on every
# compiler.
_UNIX_FLAGS = ["-O3", "-ffp-contract=off"]
_MSVC_FLAGS = ["/O2", "/fp:precise"]


class OptionalOpenMPBuildExt(_pybind11_build_ext):
    """build_ext that adds OpenMP when it can and never fails the install."""

    def build_extension(self, ext):
        base_compile = list(ext.extra_compile_args)
        base_link = list(ext.extra_link_args)
        try:
            built = self._build_first_that_works(ext, base_compile, base_link)
        finally:
            ext.extra_compile_args, ext.extra_link_args = base_compile, base_link
        if not built:
            print(
                f"WARNING: could not compile {ext.name}; pyod_odim will use "
                "its slower fallback for it (same results within float tolerance)."
            )

    def _build_first_that_works(self, ext, base_compile, base_link):
        """Build with OpenMP, else without; then, for the IWAE kernels, the
        same again without their AMX build (a compiler or assembler that
        refuses the AVX-512/AMX target); return False if none works."""
        is_msvc = self.compiler.compiler_type == "msvc"
        flags = base_compile + (_MSVC_FLAGS if is_msvc else _UNIX_FLAGS)
        openmp = ["/openmp"] if is_msvc else ["-fopenmp"]
        attempts = [
            ("with OpenMP", openmp, [] if is_msvc else openmp),
            ("without OpenMP", [], []),
        ]
        if ext.name == "pyod_odim._iwae":
            no_amx = ["/DIWAE_NO_AMX_BUILD"] if is_msvc else ["-DIWAE_NO_AMX_BUILD"]
            attempts += [(f"{label}, without the AMX build", compile_extra + no_amx, link_extra)
                         for label, compile_extra, link_extra in attempts]
        for label, compile_extra, link_extra in attempts:
            ext.extra_compile_args = flags + compile_extra
            ext.extra_link_args = base_link + link_extra
            try:
                super().build_extension(ext)
            except _BUILD_ERRORS as exc:
                print(f"warning: building {ext.name} {label} failed: {exc}")
                continue
            print(f"built {ext.name} {label}")
            return True
        return False


ext_modules = [
    Pybind11Extension(
        "pyod_odim._gmm",
        sources=["csrc/bindings.cpp", "csrc/gmm2.cpp"],
        include_dirs=["csrc"],
        depends=["csrc/gmm2.hpp", "csrc/openmp_info.hpp"],
        cxx_std=17,
        # Lets setuptools skip a missing library when copying it in place.
        optional=True,
    ),
    Pybind11Extension(
        "pyod_odim._iwae",
        sources=[
            "csrc/bindings_iwae.cpp",
            "csrc/iwae.cpp",
            "csrc/iwae_kernel_generic.cpp",
            "csrc/iwae_kernel_avx2.cpp",
            "csrc/iwae_kernel_amx.cpp",
        ],
        include_dirs=["csrc"],
        depends=["csrc/iwae.hpp", "csrc/iwae_likelihood.hpp", "csrc/iwae_plan.hpp",
                 "csrc/iwae_kernel.inc", "csrc/iwae_amx.inc",
                 "csrc/openmp_info.hpp"],
        cxx_std=17,
        optional=True,
    ),
    Pybind11Extension(
        "pyod_odim._crc32",
        sources=["csrc/crc32.cpp"],
        cxx_std=17,
        optional=True,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalOpenMPBuildExt})
