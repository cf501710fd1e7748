// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:scaled_divide (template 'elementwise', used by fast(paper))
// form:       verified_lora.symbolic.elementwise:scaled_divide
// sha256:     8a0b1e88597da4e4f03011aa5c4919bd0fe9b78fcdbb0a3db4c0eeaa7ed650d3 (SymPy expressions printed)
// op count:   float32 3, float64 3 (arithmetic ops and calls after CSE)
// Normalised query factor U1^T[m, i] = w_m M[m, i] / D~_i (Lemma 3.3: U1 = D~^{-1} Phi_U).
// arguments (then the sizes n_rows, n_cols, as const long long):
//   a        entry      monomials M^T (k x n)
//   w        row        query weights w (k)
//   d        col        normalisers D~ (n)
//   o        out_entry  U1^T = diag(w) M^T diag(D~)^-1
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_scaled_divide_f32(
    const float* __restrict__ a,
    const float* __restrict__ w,
    const float* __restrict__ d,
    float* __restrict__ o,
    const long long n_rows,
    const long long n_cols)
{
    const long long n = n_rows * n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / n_cols;
        const long long col = i - row * n_cols;
        const float v_a = a[i];
        const float v_d = d[col];
        const float v_w = w[row];
        o[i] = v_a*v_w*1.0F/v_d;
    }
}

extern "C" __global__ void vl_scaled_divide_f64(
    const double* __restrict__ a,
    const double* __restrict__ w,
    const double* __restrict__ d,
    double* __restrict__ o,
    const long long n_rows,
    const long long n_cols)
{
    const long long n = n_rows * n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / n_cols;
        const long long col = i - row * n_cols;
        const double v_a = a[i];
        const double v_d = d[col];
        const double v_w = w[row];
        o[i] = v_a*v_w*1.0/v_d;
    }
}
