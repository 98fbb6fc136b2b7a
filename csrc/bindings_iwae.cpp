// pybind11 module pyod_odim._iwae: converts types and releases the GIL.
// pyod_odim.kernels validates values and shapes before data gets here; only
// the checks that keep the kernels' memory accesses in bounds are repeated.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <string>
#include <vector>

#include "iwae.hpp"

namespace py = pybind11;

namespace {

using F32 = py::array_t<float, py::array::c_style>;

std::vector<std::size_t> widths(const std::vector<long>& values) {
  std::vector<std::size_t> out;
  for (long v : values) {
    if (v <= 0) throw py::value_error("layer widths must be positive");
    out.push_back(static_cast<std::size_t>(v));
  }
  return out;
}

iwae::Shape make_shape(long n_members, long n_features, long latent,
                       const std::vector<long>& enc_hidden,
                       const std::vector<long>& dec_hidden, bool bernoulli,
                       bool rectified, bool batch_norm) {
  if (n_members <= 0 || n_features <= 0 || latent <= 0) {
    throw py::value_error("n_members, n_features and latent must be positive");
  }
  iwae::Shape s;
  s.n_members = static_cast<std::size_t>(n_members);
  s.n_features = static_cast<std::size_t>(n_features);
  s.latent = static_cast<std::size_t>(latent);
  s.enc_hidden = widths(enc_hidden);
  s.dec_hidden = widths(dec_hidden);
  s.bernoulli = bernoulli;
  s.rectified = rectified;
  s.batch_norm = batch_norm;
  return s;
}

void expect_size(const py::array& a, std::size_t size, const char* what) {
  if (static_cast<std::size_t>(a.size()) != size) {
    throw py::value_error(std::string(what) + " has the wrong number of elements");
  }
}

// Checks every parameter array's size against the shape; returns pointers.
iwae::Params make_params(const iwae::Shape& s, const std::vector<F32>& enc_w,
                         const std::vector<F32>& enc_b, const std::vector<F32>& dec_w,
                         const std::vector<F32>& dec_b, std::vector<F32>& bn_mean,
                         std::vector<F32>& bn_var) {
  iwae::Params p;
  if (enc_w.size() != s.enc_hidden.size() + 1 || enc_b.size() != enc_w.size() ||
      dec_w.size() != s.dec_hidden.size() + 1 || dec_b.size() != dec_w.size()) {
    throw py::value_error("parameter lists do not match the layer widths");
  }
  const std::size_t M = s.n_members;
  std::vector<std::size_t> enc_in{s.n_features}, enc_out(s.enc_hidden);
  for (std::size_t w : s.enc_hidden) enc_in.push_back(w);
  enc_out.push_back(2 * s.latent);
  std::vector<std::size_t> dec_in{s.latent}, dec_out(s.dec_hidden);
  for (std::size_t w : s.dec_hidden) dec_in.push_back(w);
  dec_out.push_back(s.bernoulli ? s.n_features : 2 * s.n_features);
  for (std::size_t i = 0; i < enc_w.size(); ++i) {
    expect_size(enc_w[i], M * enc_in[i] * enc_out[i], "an encoder weight");
    expect_size(enc_b[i], M * enc_out[i], "an encoder bias");
    p.enc_w.push_back(enc_w[i].data());
    p.enc_b.push_back(enc_b[i].data());
  }
  for (std::size_t i = 0; i < dec_w.size(); ++i) {
    expect_size(dec_w[i], M * dec_in[i] * dec_out[i], "a decoder weight");
    expect_size(dec_b[i], M * dec_out[i], "a decoder bias");
    p.dec_w.push_back(dec_w[i].data());
    p.dec_b.push_back(dec_b[i].data());
  }
  if (s.batch_norm) {
    std::vector<std::size_t> hidden(s.enc_hidden);
    for (std::size_t w : s.dec_hidden) hidden.push_back(w);
    if (bn_mean.size() != hidden.size() || bn_var.size() != hidden.size()) {
      throw py::value_error("one running mean and variance per hidden layer expected");
    }
    for (std::size_t h = 0; h < hidden.size(); ++h) {
      expect_size(bn_mean[h], M * hidden[h], "a running mean");
      expect_size(bn_var[h], M * hidden[h], "a running variance");
      p.bn_mean.push_back(bn_mean[h].mutable_data());
      p.bn_var.push_back(bn_var[h].mutable_data());
    }
  }
  return p;
}

// Rows (n, d) and shared draws (M, K, L) of a scoring call.
void check_scoring_inputs(const iwae::Shape& s, const F32& x, const F32& eps) {
  if (x.ndim() != 2 || static_cast<std::size_t>(x.shape(1)) != s.n_features) {
    throw py::value_error("x must be (n, n_features)");
  }
  if (eps.ndim() != 3 || static_cast<std::size_t>(eps.shape(0)) != s.n_members ||
      static_cast<std::size_t>(eps.shape(2)) != s.latent || eps.shape(1) < 1) {
    throw py::value_error("eps must be (n_members, n_samples, latent)");
  }
}

py::array_t<double> score(long n_members, long n_features, long latent,
                          const std::vector<long>& enc_hidden,
                          const std::vector<long>& dec_hidden, bool bernoulli,
                          bool rectified, bool batch_norm, const F32& x,
                          const std::vector<F32>& enc_w,
                          const std::vector<F32>& enc_b, const std::vector<F32>& dec_w,
                          const std::vector<F32>& dec_b, std::vector<F32> bn_mean,
                          std::vector<F32> bn_var, const F32& eps, int n_threads) {
  const iwae::Shape s = make_shape(n_members, n_features, latent, enc_hidden,
                                   dec_hidden, bernoulli, rectified, batch_norm);
  const iwae::Params p = make_params(s, enc_w, enc_b, dec_w, dec_b, bn_mean, bn_var);
  check_scoring_inputs(s, x, eps);
  const std::size_t n = static_cast<std::size_t>(x.shape(0));
  const std::size_t k = static_cast<std::size_t>(eps.shape(1));
  py::array_t<double> losses({static_cast<py::ssize_t>(s.n_members), static_cast<py::ssize_t>(n)});
  double* out = losses.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::score(s, p, x.data(), n, eps.data(), k, out, n_threads);
  }
  return losses;
}

// Per-feature shares c (M, n, d) float32 and the rest r (M, n) float64 of
// every row's loss under every member (see iwae::contributions).
py::tuple contributions(long n_members, long n_features, long latent,
                        const std::vector<long>& enc_hidden,
                        const std::vector<long>& dec_hidden, bool bernoulli,
                        bool rectified, bool batch_norm, const F32& x,
                        const std::vector<F32>& enc_w,
                        const std::vector<F32>& enc_b, const std::vector<F32>& dec_w,
                        const std::vector<F32>& dec_b, std::vector<F32> bn_mean,
                        std::vector<F32> bn_var, const F32& eps, int n_threads) {
  const iwae::Shape s = make_shape(n_members, n_features, latent, enc_hidden,
                                   dec_hidden, bernoulli, rectified, batch_norm);
  const iwae::Params p = make_params(s, enc_w, enc_b, dec_w, dec_b, bn_mean, bn_var);
  check_scoring_inputs(s, x, eps);
  const std::size_t n = static_cast<std::size_t>(x.shape(0));
  const std::size_t k = static_cast<std::size_t>(eps.shape(1));
  const auto M = static_cast<py::ssize_t>(s.n_members);
  py::array_t<float> contribs({M, static_cast<py::ssize_t>(n),
                               static_cast<py::ssize_t>(s.n_features)});
  py::array_t<double> rest({M, static_cast<py::ssize_t>(n)});
  float* c_out = contribs.mutable_data();
  double* r_out = rest.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::contributions(s, p, x.data(), n, eps.data(), k, c_out, r_out, n_threads);
  }
  return py::make_tuple(contribs, rest);
}

py::array_t<double> train_step(long n_members, long n_features, long latent,
                               const std::vector<long>& enc_hidden,
                               const std::vector<long>& dec_hidden, bool bernoulli,
                               bool rectified, bool batch_norm, const std::vector<F32>& enc_w,
                               const std::vector<F32>& enc_b, const std::vector<F32>& dec_w,
                               const std::vector<F32>& dec_b, std::vector<F32> bn_mean,
                               std::vector<F32> bn_var, std::vector<F32> grads,
                               const F32& x, const F32& eps, py::object x_labeled,
                               py::object eps_labeled, double cubo_weight,
                               double cubo_order, int n_threads) {
  const iwae::Shape s = make_shape(n_members, n_features, latent, enc_hidden,
                                   dec_hidden, bernoulli, rectified, batch_norm);
  const iwae::Params p = make_params(s, enc_w, enc_b, dec_w, dec_b, bn_mean, bn_var);
  const std::size_t M = s.n_members, d = s.n_features, L = s.latent;

  // grads: enc_w..., enc_b..., dec_w..., dec_b... (the order of network.TRAINABLE
  // is dec_b, dec_w, enc_b, enc_w; the caller passes this order instead).
  const std::size_t ne = enc_w.size(), nd = dec_w.size();
  if (grads.size() != 2 * (ne + nd)) throw py::value_error("one gradient array per parameter expected");
  iwae::Grads g;
  for (std::size_t i = 0; i < ne; ++i) {
    expect_size(grads[i], static_cast<std::size_t>(enc_w[i].size()), "an encoder weight gradient");
    expect_size(grads[ne + i], static_cast<std::size_t>(enc_b[i].size()), "an encoder bias gradient");
    g.enc_w.push_back(grads[i].mutable_data());
    g.enc_b.push_back(grads[ne + i].mutable_data());
  }
  for (std::size_t i = 0; i < nd; ++i) {
    expect_size(grads[2 * ne + i], static_cast<std::size_t>(dec_w[i].size()), "a decoder weight gradient");
    expect_size(grads[2 * ne + nd + i], static_cast<std::size_t>(dec_b[i].size()), "a decoder bias gradient");
    g.dec_w.push_back(grads[2 * ne + i].mutable_data());
    g.dec_b.push_back(grads[2 * ne + nd + i].mutable_data());
  }

  auto batch_of = [&](const F32& xb, const F32& eb, const char* what) {
    if (xb.ndim() != 3 || static_cast<std::size_t>(xb.shape(0)) != M ||
        static_cast<std::size_t>(xb.shape(2)) != d || xb.shape(1) < 1) {
      throw py::value_error(std::string(what) + " rows must be (n_members, rows, n_features)");
    }
    if (eb.ndim() != 4 || static_cast<std::size_t>(eb.shape(0)) != M ||
        eb.shape(2) != xb.shape(1) || static_cast<std::size_t>(eb.shape(3)) != L ||
        eb.shape(1) < 1) {
      throw py::value_error(std::string(what) + " noise must be (n_members, K, rows, latent)");
    }
    iwae::Batch b;
    b.x = xb.data();
    b.eps = eb.data();
    b.rows = static_cast<std::size_t>(xb.shape(1));
    b.samples = static_cast<std::size_t>(eb.shape(1));
    return b;
  };
  const iwae::Batch batch = batch_of(x, eps, "batch");
  iwae::CuboTerm cubo;
  cubo.weight = cubo_weight;
  cubo.order = cubo_order;
  F32 xl, el;
  if (!x_labeled.is_none()) {
    xl = x_labeled.cast<F32>();
    el = eps_labeled.cast<F32>();
    cubo.batch = batch_of(xl, el, "labeled");
  }
  py::array_t<double> objectives(static_cast<py::ssize_t>(M));
  double* obj = objectives.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::train_step(s, p, batch, cubo, g, obj, n_threads);
  }
  return objectives;
}

}  // namespace

PYBIND11_MODULE(_iwae, m) {
  m.doc() = "Fused CPU kernels of the ensemble IWAE: scoring, per-feature contributions and training updates";
  m.def("score", &score, py::arg("n_members"), py::arg("n_features"), py::arg("latent"),
        py::arg("enc_hidden"), py::arg("dec_hidden"), py::arg("bernoulli"),
        py::arg("rectified"), py::arg("batch_norm"), py::arg("x").noconvert(),
        py::arg("enc_w"), py::arg("enc_b"), py::arg("dec_w"), py::arg("dec_b"),
        py::arg("bn_mean"), py::arg("bn_var"), py::arg("eps").noconvert(),
        py::arg("n_threads") = 0,
        "Negative IWAE bound (M, n) of every row under every member; batch "
        "normalization in evaluation mode.");
  m.def("contributions", &contributions, py::arg("n_members"), py::arg("n_features"),
        py::arg("latent"), py::arg("enc_hidden"), py::arg("dec_hidden"),
        py::arg("bernoulli"), py::arg("rectified"), py::arg("batch_norm"),
        py::arg("x").noconvert(), py::arg("enc_w"), py::arg("enc_b"), py::arg("dec_w"),
        py::arg("dec_b"), py::arg("bn_mean"), py::arg("bn_var"), py::arg("eps").noconvert(),
        py::arg("n_threads") = 0,
        "Per-feature shares (M, n, d) float32 and the rest (M, n) float64 of "
        "every row's negative IWAE bound; they add up to score's losses.");
  m.def("train_step", &train_step, py::arg("n_members"), py::arg("n_features"),
        py::arg("latent"), py::arg("enc_hidden"), py::arg("dec_hidden"),
        py::arg("bernoulli"), py::arg("rectified"), py::arg("batch_norm"), py::arg("enc_w"),
        py::arg("enc_b"), py::arg("dec_w"), py::arg("dec_b"), py::arg("bn_mean"),
        py::arg("bn_var"), py::arg("grads"), py::arg("x").noconvert(), py::arg("eps").noconvert(),
        py::arg("x_labeled"), py::arg("eps_labeled"), py::arg("cubo_weight"),
        py::arg("cubo_order"), py::arg("n_threads") = 0,
        "Forward and backward pass of one training update; writes the "
        "gradients and the running statistics in place, returns the "
        "objective of each member (M,).");
  m.attr("openmp") = iwae::openmp_enabled();
  m.def("default_threads", &iwae::default_threads);
  m.def("isa", &iwae::isa, "Code path of the hot loops: 'avx2+fma' or 'generic'.");
  m.def("allow_avx2", &iwae::allow_avx2, py::arg("allowed"),
        "Let the AVX2 build run where the CPU has it (default), or force the "
        "generic build (for tests).");
}
