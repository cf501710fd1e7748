// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:monomials_backward (template 'monomials_backward', used by fast(phi VJPs))
// form:       verified_lora.symbolic.elementwise:monomial_backward_term
// sha256:     2ed02d2e2a3c85968648dbd5a7a946622be8b3607f3777fbda22301d8c5b1efe (SymPy expressions printed)
// op count:   float32 3, float64 3 (arithmetic ops and calls after CSE)
// Backward of the monomial map: dx_j = sum_m' g[succ[m', j]] mult[m', j] x^m' (= sum_m g_m
// d(x^m)/dx_j; features.layout.derivative_table).
// arguments (then the sizes n_rows, d, k, kp, as const long long):
//   g        entry      dL/d(monomials) (n x k)
//   mono     entry      monomials (n x k)
//   succ     int_table  column of m' + e_j, (kp x d)
//   mult     real_table m'_j + 1, (kp x d)
//   dx       out_entry  dL/dx (n x d)
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_monomials_backward_f32(
    const float* __restrict__ g,
    const float* __restrict__ mono,
    const int* __restrict__ succ,
    const float* __restrict__ mult,
    float* __restrict__ dx,
    const long long n_rows,
    const long long d,
    const long long k,
    const long long kp)
{
    const long long total = n_rows * d;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / d;
        const long long j = i - row * d;
        float acc = 0;
        for (long long m = 0; m < kp; ++m) {
            const float v_g = g[row * k + succ[m * d + j]];
            const float v_mult = mult[m * d + j];
            const float v_mono = mono[row * k + m];
            const float term = v_g*v_mono*v_mult;
            acc += term;
        }
        dx[i] = acc;
    }
}

extern "C" __global__ void vl_monomials_backward_f64(
    const double* __restrict__ g,
    const double* __restrict__ mono,
    const int* __restrict__ succ,
    const double* __restrict__ mult,
    double* __restrict__ dx,
    const long long n_rows,
    const long long d,
    const long long k,
    const long long kp)
{
    const long long total = n_rows * d;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / d;
        const long long j = i - row * d;
        double acc = 0;
        for (long long m = 0; m < kp; ++m) {
            const double v_g = g[row * k + succ[m * d + j]];
            const double v_mult = mult[m * d + j];
            const double v_mono = mono[row * k + m];
            const double term = v_g*v_mono*v_mult;
            acc += term;
        }
        dx[i] = acc;
    }
}
