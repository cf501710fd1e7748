// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:kron_rows_t (template 'kron_t', used by fast(paper))
// form:       verified_lora.symbolic.elementwise:kron_rows_t
// sha256:     d1031c7b8f4d362265a0701cec4034c220ae72d9d853326c9fdb09b2c45b8b40 (SymPy expressions printed)
// op count:   float32 1, float64 1 (arithmetic ops and calls after CSE)
// Row-wise Kronecker (face-splitting) product, transposed layout: o[l1 k2 + l2, i] = a[l1, i]
// b[l2, i] (Lemma 3.6).
// arguments (then the sizes k1, k2, n, as const long long):
//   a        entry      U1^T (k1 x n)
//   b        entry      U2^T (k2 x n)
//   o        out_entry  (U1 (x) U2)^T (k1 k2 x n)
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_kron_rows_t_f32(
    const float* __restrict__ a,
    const float* __restrict__ b,
    float* __restrict__ o,
    const long long k1,
    const long long k2,
    const long long n)
{
    const long long total = k1 * k2 * n;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        const long long pair = i / n;
        const long long col = i - pair * n;
        const long long l1 = pair / k2;
        const long long l2 = pair - l1 * k2;
        const float v_a = a[l1 * n + col];
        const float v_b = b[l2 * n + col];
        o[i] = v_a*v_b;
    }
}

extern "C" __global__ void vl_kron_rows_t_f64(
    const double* __restrict__ a,
    const double* __restrict__ b,
    double* __restrict__ o,
    const long long k1,
    const long long k2,
    const long long n)
{
    const long long total = k1 * k2 * n;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        const long long pair = i / n;
        const long long col = i - pair * n;
        const long long l1 = pair / k2;
        const long long l2 = pair - l1 * k2;
        const double v_a = a[l1 * n + col];
        const double v_b = b[l2 * n + col];
        o[i] = v_a*v_b;
    }
}
