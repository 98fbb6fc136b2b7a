// pybind11 module pyod_odim._iwae: converts types and releases the GIL.
// The arguments are checked here, once, so that no call from Python can
// read or write out of bounds: read_ensemble reads the layer widths off the
// parameter arrays and checks their shapes and dtypes against each other,
// f32 checks every other array's dtype and layout. (iwae.cpp checks only
// that a Shape and its Params agree, and the kernels' layer limit.)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

#include "iwae.hpp"

namespace py = pybind11;

namespace {

using F32 = py::array_t<float, py::array::c_style>;

// obj as a float32, C-contiguous array, without a copy (the kernels write
// into some of them).
F32 f32(const py::handle& obj, const std::string& what) {
  if (!F32::check_(obj)) {
    throw py::value_error(what + ": the kernels need float32, C-contiguous arrays");
  }
  return py::reinterpret_borrow<F32>(obj);
}

std::vector<F32> f32_list(const py::handle& obj, const std::string& what) {
  std::vector<F32> out;
  for (const py::handle item : py::reinterpret_borrow<py::sequence>(obj)) {
    out.push_back(f32(item, what));
  }
  return out;
}

void expect_shape(const F32& a, std::initializer_list<std::size_t> dims, const std::string& what) {
  bool ok = static_cast<std::size_t>(a.ndim()) == dims.size();
  std::size_t i = 0;
  for (std::size_t want : dims) ok = ok && static_cast<std::size_t>(a.shape(i++)) == want;
  if (!ok) throw py::value_error(what + " does not match the other parameters' shapes");
}

// The stacked parameters of an ensemble: the arrays, kept alive for the
// call, their shape and pointers to their data.
struct Ensemble {
  std::vector<F32> enc_w, enc_b, dec_w, dec_b, bn_mean, bn_var;
  iwae::Shape shape;
  iwae::Params params;
};

// One side of the network: weights (M, in, out) and biases (M, 1, out),
// each layer's input the previous layer's output, starting at `in`. The
// widths of all but the last layer go to hidden; returns the last output.
std::size_t read_layers(const std::vector<F32>& w, const std::vector<F32>& b, std::size_t M,
                        std::size_t in, const char* side, std::vector<std::size_t>* hidden,
                        std::vector<const float*>* w_ptr, std::vector<const float*>* b_ptr) {
  const std::string name(side);
  if (w.empty() || b.size() != w.size()) {
    throw py::value_error(name + ": one weight and one bias per layer expected");
  }
  std::size_t out = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i].ndim() != 3) throw py::value_error(name + " weights must be (n_members, in, out)");
    out = static_cast<std::size_t>(w[i].shape(2));
    if (out == 0) throw py::value_error(name + " layer widths must be positive");
    expect_shape(w[i], {M, in, out}, name + " weight " + std::to_string(i));
    expect_shape(b[i], {M, 1, out}, name + " bias " + std::to_string(i));
    w_ptr->push_back(w[i].data());
    b_ptr->push_back(b[i].data());
    if (i + 1 < w.size()) hidden->push_back(out);
    in = out;
  }
  return out;
}

// params: enc_w, enc_b, dec_w, dec_b, bn_mean, bn_var (a
// pyod_odim.network.Parameters of arrays), each a list with one array per layer.
Ensemble read_ensemble(const py::sequence& params, iwae::Likelihood likelihood) {
  if (py::len(params) != 6) {
    throw py::value_error("params must hold enc_w, enc_b, dec_w, dec_b, bn_mean and bn_var");
  }
  Ensemble e;
  e.enc_w = f32_list(params[0], "enc_w");
  e.enc_b = f32_list(params[1], "enc_b");
  e.dec_w = f32_list(params[2], "dec_w");
  e.dec_b = f32_list(params[3], "dec_b");
  e.bn_mean = f32_list(params[4], "bn_mean");
  e.bn_var = f32_list(params[5], "bn_var");
  if (e.enc_w.empty() || e.enc_w[0].ndim() != 3 || e.enc_w[0].shape(0) < 1 ||
      e.enc_w[0].shape(1) < 1) {
    throw py::value_error("enc_w must start with a weight of shape (n_members, n_features, width)");
  }
  iwae::Shape& s = e.shape;
  s.n_members = static_cast<std::size_t>(e.enc_w[0].shape(0));
  s.n_features = static_cast<std::size_t>(e.enc_w[0].shape(1));
  s.likelihood = likelihood;
  iwae::Params& p = e.params;
  const std::size_t head = read_layers(e.enc_w, e.enc_b, s.n_members, s.n_features, "encoder",
                                       &s.enc_hidden, &p.enc_w, &p.enc_b);
  if (head % 2 != 0) throw py::value_error("the encoder's head must emit 2 * latent values");
  s.latent = head / 2;
  const std::size_t out = read_layers(e.dec_w, e.dec_b, s.n_members, s.latent, "decoder",
                                      &s.dec_hidden, &p.dec_w, &p.dec_b);
  if (out != s.n_outputs()) {
    throw py::value_error("the decoder's output layer does not match the likelihood");
  }
  s.batch_norm = !e.bn_mean.empty();
  std::vector<std::size_t> hidden(s.enc_hidden);
  hidden.insert(hidden.end(), s.dec_hidden.begin(), s.dec_hidden.end());
  if (s.batch_norm && e.bn_mean.size() != hidden.size()) {
    throw py::value_error("one running mean and variance per hidden layer expected");
  }
  if (e.bn_var.size() != e.bn_mean.size()) {
    throw py::value_error("bn_mean and bn_var must have the same length");
  }
  for (std::size_t h = 0; h < e.bn_mean.size(); ++h) {
    expect_shape(e.bn_mean[h], {s.n_members, 1, hidden[h]}, "running mean " + std::to_string(h));
    expect_shape(e.bn_var[h], {s.n_members, 1, hidden[h]}, "running variance " + std::to_string(h));
    p.bn_mean.push_back(e.bn_mean[h].mutable_data());
    p.bn_var.push_back(e.bn_var[h].mutable_data());
  }
  return e;
}

// Rows (n, d) and shared draws (M, K, L) of a scoring call.
struct ScoringInputs {
  F32 x, eps;
  std::size_t n, samples;
};

ScoringInputs read_scoring_inputs(const iwae::Shape& s, const py::handle& x_obj,
                                  const py::handle& eps_obj) {
  ScoringInputs in{f32(x_obj, "x"), f32(eps_obj, "eps"), 0, 0};
  if (in.x.ndim() != 2 || static_cast<std::size_t>(in.x.shape(1)) != s.n_features) {
    throw py::value_error("x must be (n, n_features)");
  }
  if (in.eps.ndim() != 3 || static_cast<std::size_t>(in.eps.shape(0)) != s.n_members ||
      static_cast<std::size_t>(in.eps.shape(2)) != s.latent || in.eps.shape(1) < 1) {
    throw py::value_error("eps must be (n_members, n_samples, latent)");
  }
  in.n = static_cast<std::size_t>(in.x.shape(0));
  in.samples = static_cast<std::size_t>(in.eps.shape(1));
  return in;
}

// One update's rows (M, B, d) and noise (M, K, B, L).
iwae::Batch read_batch(const iwae::Shape& s, const F32& xb, const F32& eb, const char* what) {
  const std::size_t M = s.n_members, d = s.n_features, L = s.latent;
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
}

// grads: one array per weight and bias, in the order enc_w..., enc_b...,
// dec_w..., dec_b..., each the shape of its parameter.
iwae::Grads read_grads(const Ensemble& e, std::vector<F32>& grads) {
  const std::vector<const std::vector<F32>*> order{&e.enc_w, &e.enc_b, &e.dec_w, &e.dec_b};
  iwae::Grads g;
  std::vector<float*>* dest[] = {&g.enc_w, &g.enc_b, &g.dec_w, &g.dec_b};
  std::size_t next = 0;
  for (std::size_t part = 0; part < order.size(); ++part) {
    for (const F32& param : *order[part]) {
      if (next >= grads.size() || grads[next].size() != param.size()) {
        throw py::value_error("one gradient array per weight and bias, of its size, expected");
      }
      dest[part]->push_back(grads[next++].mutable_data());
    }
  }
  if (next != grads.size()) throw py::value_error("more gradient arrays than parameters");
  return g;
}

py::array_t<double> score(const py::sequence& params, iwae::Likelihood likelihood,
                          const py::object& x, const py::object& eps, int n_threads,
                          bool bf16_products) {
  const Ensemble e = read_ensemble(params, likelihood);
  if (bf16_products && !iwae::bf16_available()) {
    throw py::value_error("bf16_products: this CPU (or build) has no AMX with AVX512-BF16");
  }
  const ScoringInputs in = read_scoring_inputs(e.shape, x, eps);
  py::array_t<double> losses({static_cast<py::ssize_t>(e.shape.n_members),
                              static_cast<py::ssize_t>(in.n)});
  double* out = losses.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::score(e.shape, e.params, in.x.data(), in.n, in.eps.data(), in.samples, out, n_threads,
                bf16_products);
  }
  return losses;
}

// Per-feature shares c (M, n, d) float32 and the rest r (M, n) float64 of
// every row's loss under every member (see iwae::contributions).
py::tuple contributions(const py::sequence& params, iwae::Likelihood likelihood,
                        const py::object& x, const py::object& eps, int n_threads,
                        bool bf16_products) {
  const Ensemble e = read_ensemble(params, likelihood);
  const ScoringInputs in = read_scoring_inputs(e.shape, x, eps);
  const auto M = static_cast<py::ssize_t>(e.shape.n_members);
  const auto n = static_cast<py::ssize_t>(in.n);
  py::array_t<float> contribs({M, n, static_cast<py::ssize_t>(e.shape.n_features)});
  py::array_t<double> rest({M, n});
  float* c_out = contribs.mutable_data();
  double* r_out = rest.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::contributions(e.shape, e.params, in.x.data(), in.n, in.eps.data(), in.samples, c_out,
                        r_out, n_threads, bf16_products);
  }
  return py::make_tuple(contribs, rest);
}

py::array_t<double> train_step(const py::sequence& params, iwae::Likelihood likelihood,
                               const py::object& grads, const py::object& x,
                               const py::object& eps, const py::object& x_labeled,
                               const py::object& eps_labeled, double cubo_weight,
                               double cubo_order, int n_threads, bool bf16_products) {
  const Ensemble e = read_ensemble(params, likelihood);
  if (bf16_products && !iwae::bf16_available()) {
    throw py::value_error("bf16_products: this CPU (or build) has no AMX with AVX512-BF16");
  }
  std::vector<F32> grad_arrays = f32_list(grads, "grads");
  const iwae::Grads g = read_grads(e, grad_arrays);
  const F32 xb = f32(x, "x"), eb = f32(eps, "eps");
  const iwae::Batch batch = read_batch(e.shape, xb, eb, "batch");
  iwae::CuboTerm cubo;
  cubo.weight = cubo_weight;
  cubo.order = cubo_order;
  F32 xl, el;
  if (!x_labeled.is_none()) {
    xl = f32(x_labeled, "x_labeled");
    el = f32(eps_labeled, "eps_labeled");
    cubo.batch = read_batch(e.shape, xl, el, "labeled");
  }
  py::array_t<double> objectives(static_cast<py::ssize_t>(e.shape.n_members));
  double* obj = objectives.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::train_step(e.shape, e.params, batch, cubo, g, obj, n_threads, bf16_products);
  }
  return objectives;
}

py::array_t<float> bf16_matmul(const py::object& a, const py::object& b) {
  if (!iwae::bf16_available()) {
    throw py::value_error("bf16_matmul: this CPU (or build) has no AMX with AVX512-BF16");
  }
  const F32 A = f32(a, "a"), B = f32(b, "b");
  if (A.ndim() != 2 || B.ndim() != 2 || A.shape(1) != B.shape(0)) {
    throw py::value_error("bf16_matmul: a (M, K) and b (K, N) expected");
  }
  const std::size_t M = A.shape(0), K = A.shape(1), N = B.shape(1);
  py::array_t<float> c({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(N)});
  float* out = c.mutable_data();
  {
    py::gil_scoped_release release;
    iwae::bf16_matmul(A.data(), B.data(), M, K, N, out);
  }
  return c;
}

}  // namespace

PYBIND11_MODULE(_iwae, m) {
  m.doc() = "Fused CPU kernels of the ensemble IWAE: scoring, per-feature contributions and training updates";
  py::enum_<iwae::Likelihood>(m, "Likelihood", "The decoder's distribution of one feature.")
      .value("gaussian", iwae::Likelihood::kGaussian)
      .value("rectified", iwae::Likelihood::kRectified)
      .value("bernoulli", iwae::Likelihood::kBernoulli);
  m.def("score", &score, py::arg("params"), py::arg("likelihood"), py::arg("x"),
        py::arg("eps"), py::arg("n_threads") = 0, py::arg("bf16_products") = false,
        "Negative IWAE bound (M, n) of every row under every member; batch "
        "normalization in evaluation mode. bf16_products runs the products "
        "in bfloat16 with float32 accumulation (AMX).");
  m.def("contributions", &contributions, py::arg("params"), py::arg("likelihood"),
        py::arg("x"), py::arg("eps"), py::arg("n_threads") = 0,
        py::arg("bf16_products") = false,
        "Per-feature shares (M, n, d) float32 and the rest (M, n) float64 of "
        "every row's negative IWAE bound; they add up to score's losses "
        "(with the same bf16_products).");
  m.def("train_step", &train_step, py::arg("params"), py::arg("likelihood"),
        py::arg("grads"), py::arg("x"), py::arg("eps"), py::arg("x_labeled"),
        py::arg("eps_labeled"), py::arg("cubo_weight"), py::arg("cubo_order"),
        py::arg("n_threads") = 0, py::arg("bf16_products") = false,
        "Forward and backward pass of one training update; writes the "
        "gradients and the running statistics in place, returns the "
        "objective of each member (M,). bf16_products runs the wide "
        "products in bfloat16 with float32 accumulation (AMX).");
  m.def("bf16_matmul", &bf16_matmul, py::arg("a"), py::arg("b"),
        "a @ b with the training updates' bfloat16 products: operands rounded "
        "to bfloat16, float32 accumulation on the AMX tiles.");
  m.def("start_product_clock", &iwae::start_product_clock,
        "Set the product clock to zero and start it: every bfloat16 product on "
        "the tiles (operand packing included) adds its time to it.");
  m.def("stop_product_clock", &iwae::stop_product_clock,
        "Stop the product clock; return the seconds it counted since it started.");
  m.def("release_scratch", &iwae::release_scratch,
        "Free the scratch train_step keeps in this thread between updates.");
  m.def("bf16_available", &iwae::bf16_available,
        "Whether this build and CPU can run bfloat16 products on AMX tiles.");
  m.attr("openmp") = iwae::openmp_enabled();
  m.def("default_threads", &iwae::default_threads);
  m.def("isa", &iwae::isa,
        "Code path of the hot loops: 'avx512+amx', 'avx2+fma' or 'generic'.");
  m.def("allow_avx512", &iwae::allow_avx512, py::arg("allowed"),
        "Let float32 work run on the AMX build (AVX-512) where the CPU has it "
        "(default), or keep it on the AVX2 build (for tests).");
  m.def("allow_avx2", &iwae::allow_avx2, py::arg("allowed"),
        "Let the AVX2 build run where the CPU has it (default), or force the "
        "generic build (for tests).");
}
