// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:monomials_t (template 'monomials_t', used by fast)
// form:       verified_lora.symbolic.elementwise:monomial_step
// sha256:     aa2edcfce8c558822044f76b8cfb8e5d647ad7e339c9a9dac4eacc150060aa03 (SymPy expressions printed)
// op count:   float32 1, float64 1 (arithmetic ops and calls after CSE)
// Symmetric monomials of degree <= g (DESIGN 4.3), transposed: mono[0, i] = 1, mono[m, i] =
// mono[parent[m], i] x[var[m], i] in the features.layout column order; phi_V = mono, phi_U = w *
// mono.
// arguments (then the sizes d, k, n, as const long long):
//   x        entry      inputs, transposed (d x n)
//   parent   int_table  row of x^(m - e_var(m)) (k entries, parent[m] < m)
//   var      int_table  the variable multiplied in (k entries, 0 <= var[m] < d)
//   mono     out_entry  x^m, transposed (k x n)
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_monomials_t_f32(
    const float* __restrict__ x,
    const int* __restrict__ parent,
    const int* __restrict__ var,
    float* __restrict__ mono,
    const long long d,
    const long long k,
    const long long n)
{
    for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < n; col += (long long)blockDim.x * gridDim.x) {
        mono[col] = 1;
        for (long long m = 1; m < k; ++m) {
            const float v_prev = mono[(long long)parent[m] * n + col];
            const float v_x = x[(long long)var[m] * n + col];
            mono[m * n + col] = v_prev*v_x;
        }
    }
}

extern "C" __global__ void vl_monomials_t_f64(
    const double* __restrict__ x,
    const int* __restrict__ parent,
    const int* __restrict__ var,
    double* __restrict__ mono,
    const long long d,
    const long long k,
    const long long n)
{
    for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < n; col += (long long)blockDim.x * gridDim.x) {
        mono[col] = 1;
        for (long long m = 1; m < k; ++m) {
            const double v_prev = mono[(long long)parent[m] * n + col];
            const double v_x = x[(long long)var[m] * n + col];
            mono[m * n + col] = v_prev*v_x;
        }
    }
}
