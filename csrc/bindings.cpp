// pybind11 module pyod_odim._gmm: converts types and releases the GIL.
// Validation of values (finite, non-empty, option ranges) is done by
// pyod_odim.gmm before data gets here; only the checks that keep the
// kernel's memory accesses in bounds are repeated.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "gmm2.hpp"

namespace py = pybind11;

namespace {

gmm2::Distance parse_distance(const std::string& name) {
  if (name == "sigma") return gmm2::Distance::kSigma;
  if (name == "variance") return gmm2::Distance::kVariance;
  throw py::value_error("distance must be 'sigma' or 'variance', got '" +
                        name + "'");
}

template <class T>
py::dict fit(const py::array_t<T, py::array::c_style>& losses, double tol,
             int max_iter, double reg_covar, const std::string& distance,
             int n_threads) {
  if (losses.ndim() != 2) throw py::value_error("losses must be 2-D (M, n)");
  const py::ssize_t m = losses.shape(0);
  const py::ssize_t n = losses.shape(1);
  if (m < 1 || n < 1) throw py::value_error("losses must not be empty");

  gmm2::Options opt;
  opt.tol = tol;
  opt.max_iter = max_iter;
  opt.reg_covar = reg_covar;
  opt.distance = parse_distance(distance);
  opt.n_threads = n_threads;

  py::array_t<double> weights({m, py::ssize_t{2}});
  py::array_t<double> means({m, py::ssize_t{2}});
  py::array_t<double> variances({m, py::ssize_t{2}});
  py::array_t<double> log_likelihood(m);
  py::array_t<std::int32_t> n_iter(m);
  py::array_t<bool> converged(m);
  py::array_t<double> dist(m);
  const gmm2::Outputs out{weights.mutable_data(),   means.mutable_data(),
                          variances.mutable_data(), log_likelihood.mutable_data(),
                          n_iter.mutable_data(),    converged.mutable_data(),
                          dist.mutable_data()};
  const T* data = losses.data();
  {
    py::gil_scoped_release release;
    gmm2::fit_rows(data, static_cast<std::size_t>(m),
                   static_cast<std::size_t>(n), opt, out);
  }

  py::dict result;
  result["weights"] = weights;
  result["means"] = means;
  result["variances"] = variances;
  result["log_likelihood"] = log_likelihood;
  result["n_iter"] = n_iter;
  result["converged"] = converged;
  result["distance"] = dist;
  return result;
}

template <class T>
void def_fit(py::module_& m) {
  m.def("fit", &fit<T>, py::arg("losses").noconvert(), py::arg("tol"),
        py::arg("max_iter"), py::arg("reg_covar"), py::arg("distance"),
        py::arg("n_threads") = 0,
        "Fit a 2-component 1-D Gaussian mixture to every row of a "
        "C-contiguous (M, n) float32 or float64 array. Returns a dict of "
        "arrays: weights, means, variances (M, 2); log_likelihood, n_iter, "
        "converged, distance (M,).");
}

}  // namespace

PYBIND11_MODULE(_gmm, m) {
  m.doc() = "Compiled batched GMM-2 + Wasserstein kernel of pyod_odim.gmm";
  def_fit<double>(m);
  def_fit<float>(m);
  m.def("normal_pair_distance",
        [](double mu0, double var0, double mu1, double var1,
           const std::string& distance) {
          return gmm2::normal_pair_distance(mu0, var0, mu1, var1,
                                            parse_distance(distance));
        },
        py::arg("mu0"), py::arg("var0"), py::arg("mu1"), py::arg("var1"),
        py::arg("distance") = "sigma");
  m.attr("openmp") = gmm2::openmp_enabled();
  m.def("default_threads", &gmm2::default_threads,
        "Threads used when n_threads <= 0 (1 without OpenMP).");
  m.def("pack_kind", &gmm2::pack_kind,
        "E-step code path on this CPU: 'avx2', 'sse2/neon' or 'scalar'.");
}
