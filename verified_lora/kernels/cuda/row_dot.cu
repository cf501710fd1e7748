// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:row_dot (template 'rows', used by fast(paper))
// form:       verified_lora.symbolic.elementwise:row_dot
// sha256:     eb3e988ccaf9402adcf0fc5b6136c62de5fc513ff4da68be17ebafc54474c465 (SymPy expressions printed)
// op count:   float32 2, float64 2 (arithmetic ops and calls after CSE)
// Row-wise dot products rvec_i = sum_l a_il b_il; with a = f~ V, b = c~ this is rvec~ = (f~*q~) 1
// (Lemma 3.7).
// arguments (then the sizes n_rows, n_cols, as const long long):
//   a        entry      f~ V
//   b        entry      c~
//   rvec     out_row    rvec_i = sum_l a_il b_il
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_row_dot_f32(
    const float* __restrict__ a,
    const float* __restrict__ b,
    float* __restrict__ rvec,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        float acc_r = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const float v_a = a[base + j];
            const float v_b = b[base + j];
            const float term = v_a*v_b;
            acc_r += term;
        }
        rvec[row] = acc_r;
    }
}

extern "C" __global__ void vl_row_dot_f64(
    const double* __restrict__ a,
    const double* __restrict__ b,
    double* __restrict__ rvec,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        double acc_r = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const double v_a = a[base + j];
            const double v_b = b[base + j];
            const double term = v_a*v_b;
            acc_r += term;
        }
        rvec[row] = acc_r;
    }
}
