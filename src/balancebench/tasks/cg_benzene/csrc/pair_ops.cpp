// Fused pair operations of the explicit-force SchNet step (balancebench.pair_kernels).
//
// For a half neighbour list (i_p, j_p), p = 1..P, and per-bead features of width F:
//   pair_conv(w, x, base) -> m (N, F): m_n = base_n + sum_{p: i_p = n} w_p * x_{j_p} + sum_{p: j_p = n} w_p * x_{i_p}
//   pair_cross(a, b) -> c  (P, F):  c_p = a_{i_p} * b_{j_p} + a_{j_p} * b_{i_p}
//   pair_dot(a, b, d) -> s (P,):     s_p = sum_f c_pf d_pf   (and pair_dot_adjoint, its backward in one pass)
// (elementwise products over F). Each is one pass over the pairs instead of the gathers,
// products and scatters of the eager expression; the loops run in pair order on one thread,
// so results are deterministic. Each is the other's adjoint (see pair_kernels.py).
#include <torch/extension.h>

// The inner loops run over the F features of one pair: within an iteration f only element f of each row
// is read or written, so they vectorize (OpenMP SIMD directives only, -fopenmp-simd: no threads). The sum
// of pair_dot is then taken in the vector lanes' order: fixed for a build, so still deterministic.
#define BB_PRAGMA(x) _Pragma(#x)
#define BB_SIMD BB_PRAGMA(omp simd)
#define BB_SIMD_SUM(s) BB_PRAGMA(omp simd reduction(+ : s))

namespace {

void check(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
}

// every index of `idx` (int64) addresses one of n rows: nothing is written out of bounds
void check_index(const torch::Tensor& idx, const char* name, int64_t n) {
  check(idx, name, 1);
  TORCH_CHECK(idx.scalar_type() == torch::kLong, name, " must be int64");
  // one pass over the raw indices (two reductions through the dispatcher cost more than the check itself)
  const auto c = idx.contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  bool inside = true;
  for (int64_t k = 0, m = c.numel(); k < m; ++k) inside &= (p[k] >= 0) & (p[k] < n);
  TORCH_CHECK(inside, name, " out of range");
}

void check_pairs(const torch::Tensor& i, const torch::Tensor& j, int64_t n) {
  TORCH_CHECK(i.size(0) == j.size(0), "i and j differ in length");
  check_index(i, "i", n);
  check_index(j, "j", n);
}

template <typename T>
void conv_loop(const T* w, const T* x, const int64_t* I, const int64_t* J, T* out, int64_t P, int64_t F) {
  for (int64_t p = 0; p < P; ++p) {
    const T* wp = w + p * F;
    const T* xi = x + I[p] * F;
    const T* xj = x + J[p] * F;
    T* oi = out + I[p] * F;
    T* oj = out + J[p] * F;
    BB_SIMD
    for (int64_t f = 0; f < F; ++f) oi[f] += wp[f] * xj[f];
    BB_SIMD
    for (int64_t f = 0; f < F; ++f) oj[f] += wp[f] * xi[f];
  }
}

template <typename T>
void cross_loop(const T* a, const T* b, const int64_t* I, const int64_t* J, T* out, int64_t P, int64_t F) {
  for (int64_t p = 0; p < P; ++p) {
    const T* ai = a + I[p] * F;
    const T* aj = a + J[p] * F;
    const T* bi = b + I[p] * F;
    const T* bj = b + J[p] * F;
    T* op = out + p * F;
    BB_SIMD
    for (int64_t f = 0; f < F; ++f) op[f] = ai[f] * bj[f] + aj[f] * bi[f];
  }
}

// s_p = sum_f (a_i b_j + a_j b_i)_f d_pf
template <typename T>
void dot_loop(const T* a, const T* b, const T* d, const int64_t* I, const int64_t* J, T* out, int64_t P, int64_t F) {
  for (int64_t p = 0; p < P; ++p) {
    const T* ai = a + I[p] * F;
    const T* aj = a + J[p] * F;
    const T* bi = b + I[p] * F;
    const T* bj = b + J[p] * F;
    const T* dp = d + p * F;
    T s = 0;
    BB_SIMD_SUM(s)
    for (int64_t f = 0; f < F; ++f) s += (ai[f] * bj[f] + aj[f] * bi[f]) * dp[f];
    out[p] = s;
  }
}

// the adjoint of dot_loop for cotangents g (P,): with W_p = g_p d_p,
//   ga_i += W b_j, ga_j += W b_i, gb_j += W a_i, gb_i += W a_j, gd_p = g_p (a_i b_j + a_j b_i)
template <typename T>
void dot_adjoint_loop(const T* g, const T* a, const T* b, const T* d, const int64_t* I, const int64_t* J, T* ga,
                      T* gb, T* gd, int64_t P, int64_t F) {
  for (int64_t p = 0; p < P; ++p) {
    const T* ai = a + I[p] * F;
    const T* aj = a + J[p] * F;
    const T* bi = b + I[p] * F;
    const T* bj = b + J[p] * F;
    const T* dp = d + p * F;
    T* gai = ga + I[p] * F;
    T* gaj = ga + J[p] * F;
    T* gbi = gb + I[p] * F;
    T* gbj = gb + J[p] * F;
    T* gdp = gd + p * F;
    const T gp = g[p];
    BB_SIMD
    for (int64_t f = 0; f < F; ++f) {
      const T w = gp * dp[f];
      gdp[f] = gp * (ai[f] * bj[f] + aj[f] * bi[f]);
      gai[f] += w * bj[f];
      gaj[f] += w * bi[f];
      gbj[f] += w * ai[f];
      gbi[f] += w * aj[f];
    }
  }
}

}  // namespace

torch::Tensor pair_conv(torch::Tensor w, torch::Tensor x, torch::Tensor i, torch::Tensor j, torch::Tensor base) {
  check(w, "w", 2);
  check(x, "x", 2);
  TORCH_CHECK(base.sizes() == x.sizes() && base.scalar_type() == x.scalar_type(), "base must match x");
  TORCH_CHECK(w.size(0) == i.size(0) && w.size(1) == x.size(1), "w must be (P, F) with x (N, F)");
  TORCH_CHECK(w.scalar_type() == x.scalar_type(), "w and x differ in dtype");
  check_pairs(i, j, x.size(0));
  w = w.contiguous();
  x = x.contiguous();
  i = i.contiguous();
  j = j.contiguous();
  auto out = base.contiguous().clone();  // the pairs are added to it in order (as chained index_add would)
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pair_conv", [&] {
    conv_loop<scalar_t>(w.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), i.data_ptr<int64_t>(),
                        j.data_ptr<int64_t>(), out.data_ptr<scalar_t>(), w.size(0), w.size(1));
  });
  return out;
}

torch::Tensor pair_cross(torch::Tensor a, torch::Tensor b, torch::Tensor i, torch::Tensor j) {
  check(a, "a", 2);
  check(b, "b", 2);
  TORCH_CHECK(a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type(), "a and b must match");
  check_pairs(i, j, a.size(0));
  a = a.contiguous();
  b = b.contiguous();
  i = i.contiguous();
  j = j.contiguous();
  auto out = torch::empty({i.size(0), a.size(1)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pair_cross", [&] {
    cross_loop<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), i.data_ptr<int64_t>(),
                         j.data_ptr<int64_t>(), out.data_ptr<scalar_t>(), i.size(0), a.size(1));
  });
  return out;
}

torch::Tensor pair_dot(torch::Tensor a, torch::Tensor b, torch::Tensor d, torch::Tensor i, torch::Tensor j) {
  check(a, "a", 2);
  check(b, "b", 2);
  check(d, "d", 2);
  TORCH_CHECK(a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type(), "a and b must match");
  TORCH_CHECK(d.size(0) == i.size(0) && d.size(1) == a.size(1) && d.scalar_type() == a.scalar_type(),
              "d must be (P, F) with a (N, F)");
  check_pairs(i, j, a.size(0));
  a = a.contiguous();
  b = b.contiguous();
  d = d.contiguous();
  i = i.contiguous();
  j = j.contiguous();
  auto out = torch::empty({i.size(0)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pair_dot", [&] {
    dot_loop<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), d.data_ptr<scalar_t>(), i.data_ptr<int64_t>(),
                       j.data_ptr<int64_t>(), out.data_ptr<scalar_t>(), i.size(0), a.size(1));
  });
  return out;
}

std::vector<torch::Tensor> pair_dot_adjoint(torch::Tensor g, torch::Tensor a, torch::Tensor b, torch::Tensor d,
                                            torch::Tensor i, torch::Tensor j) {
  check(g, "g", 1);
  check(a, "a", 2);
  check(b, "b", 2);
  check(d, "d", 2);
  TORCH_CHECK(a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type(), "a and b must match");
  TORCH_CHECK(d.size(0) == i.size(0) && d.size(1) == a.size(1) && d.scalar_type() == a.scalar_type(),
              "d must be (P, F) with a (N, F)");
  TORCH_CHECK(g.size(0) == i.size(0) && g.scalar_type() == a.scalar_type(), "g must be (P,) of a's dtype");
  check_pairs(i, j, a.size(0));
  g = g.contiguous();
  a = a.contiguous();
  b = b.contiguous();
  d = d.contiguous();
  i = i.contiguous();
  j = j.contiguous();
  auto ga = torch::zeros_like(a);
  auto gb = torch::zeros_like(b);
  auto gd = torch::empty_like(d);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pair_dot_adjoint", [&] {
    dot_adjoint_loop<scalar_t>(g.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                               d.data_ptr<scalar_t>(), i.data_ptr<int64_t>(), j.data_ptr<int64_t>(),
                               ga.data_ptr<scalar_t>(), gb.data_ptr<scalar_t>(), gd.data_ptr<scalar_t>(), i.size(0),
                               a.size(1));
  });
  return {ga, gb, gd};
}

// Tabulated filter (FilterTable): row k of `coeffs` (n, 4F) holds [a0, a1, a2, a3] of interval k, and
//   w_p = a0 + t (a1 + t (a2 + t a3)),   dw_p = inv_h (a1 + t (2 a2 + 3 t a3))     at k_p, t_p.
// table_adjoint is its adjoint in the coefficients: grad[k_p] += (gw_p, gw_p t + gdw_p inv_h,
// gw_p t^2 + 2 gdw_p inv_h t, gw_p t^3 + 3 gdw_p inv_h t^2); each is the other's backward.
std::vector<torch::Tensor> table_eval(torch::Tensor coeffs, torch::Tensor k, torch::Tensor t, double inv_h) {
  check(coeffs, "coeffs", 2);
  check(t, "t", 1);
  TORCH_CHECK(coeffs.size(1) % 4 == 0, "coeffs must be (n, 4F)");
  TORCH_CHECK(k.size(0) == t.size(0), "k and t differ in length");
  TORCH_CHECK(t.scalar_type() == coeffs.scalar_type(), "t and coeffs differ in dtype");
  const int64_t n = coeffs.size(0), F = coeffs.size(1) / 4, P = k.size(0);
  check_index(k, "k", n);
  coeffs = coeffs.contiguous();
  k = k.contiguous();
  t = t.contiguous();
  auto w = torch::empty({P, F}, coeffs.options());
  auto dw = torch::empty({P, F}, coeffs.options());
  AT_DISPATCH_FLOATING_TYPES(coeffs.scalar_type(), "table_eval", [&] {
    const scalar_t* c = coeffs.data_ptr<scalar_t>();
    const int64_t* K = k.data_ptr<int64_t>();
    const scalar_t* T = t.data_ptr<scalar_t>();
    scalar_t* W = w.data_ptr<scalar_t>();
    scalar_t* D = dw.data_ptr<scalar_t>();
    const scalar_t ih = static_cast<scalar_t>(inv_h);
    for (int64_t p = 0; p < P; ++p) {
      const scalar_t* a0 = c + K[p] * 4 * F;
      const scalar_t* a1 = a0 + F;
      const scalar_t* a2 = a1 + F;
      const scalar_t* a3 = a2 + F;
      const scalar_t x = T[p];
      scalar_t* wp = W + p * F;
      scalar_t* dp = D + p * F;
      BB_SIMD
      for (int64_t f = 0; f < F; ++f) {
        wp[f] = a0[f] + x * (a1[f] + x * (a2[f] + x * a3[f]));
        dp[f] = ih * (a1[f] + x * (2 * a2[f] + 3 * x * a3[f]));
      }
    }
  });
  return {w, dw};
}

torch::Tensor table_adjoint(torch::Tensor gw, torch::Tensor gdw, torch::Tensor k, torch::Tensor t, double inv_h,
                            int64_t n) {
  check(gw, "gw", 2);
  check(gdw, "gdw", 2);
  TORCH_CHECK(gw.sizes() == gdw.sizes() && gw.size(0) == k.size(0) && k.size(0) == t.size(0), "shapes differ");
  const int64_t F = gw.size(1), P = k.size(0);
  check_index(k, "k", n);
  gw = gw.contiguous();
  gdw = gdw.contiguous();
  k = k.contiguous();
  t = t.contiguous();
  auto grad = torch::zeros({n, 4 * F}, gw.options());
  AT_DISPATCH_FLOATING_TYPES(gw.scalar_type(), "table_adjoint", [&] {
    scalar_t* g = grad.data_ptr<scalar_t>();
    const int64_t* K = k.data_ptr<int64_t>();
    const scalar_t* T = t.data_ptr<scalar_t>();
    const scalar_t* GW = gw.data_ptr<scalar_t>();
    const scalar_t* GD = gdw.data_ptr<scalar_t>();
    const scalar_t ih = static_cast<scalar_t>(inv_h);
    for (int64_t p = 0; p < P; ++p) {
      scalar_t* g0 = g + K[p] * 4 * F;
      scalar_t* g1 = g0 + F;
      scalar_t* g2 = g1 + F;
      scalar_t* g3 = g2 + F;
      const scalar_t x = T[p], x2 = x * x;
      const scalar_t* a = GW + p * F;
      const scalar_t* d = GD + p * F;
      BB_SIMD
      for (int64_t f = 0; f < F; ++f) {
        const scalar_t dd = ih * d[f];
        g0[f] += a[f];
        g1[f] += a[f] * x + dd;
        g2[f] += a[f] * x2 + 2 * x * dd;
        g3[f] += a[f] * x2 * x + 3 * x2 * dd;
      }
    }
  });
  return grad;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("table_eval", &table_eval, "tabulated filter W and dW/dr at (k, t)");
  m.def("table_adjoint", &table_adjoint, "adjoint of table_eval in the coefficients");
  m.def("pair_conv", &pair_conv, "m_n = base_n + sum_{i_p=n} w_p x_{j_p} + sum_{j_p=n} w_p x_{i_p}");
  m.def("pair_cross", &pair_cross, "c_p = a_{i_p} b_{j_p} + a_{j_p} b_{i_p}");
  m.def("pair_dot", &pair_dot, "s_p = sum_f (a_{i_p} b_{j_p} + a_{j_p} b_{i_p})_f d_pf");
  m.def("pair_dot_adjoint", &pair_dot_adjoint, "adjoint of pair_dot: (dL/da, dL/db, dL/dd) from dL/ds");
}
