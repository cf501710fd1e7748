// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:softmax_grad_rows (template 'rows', used by exact)
// form:       verified_lora.symbolic.elementwise:softmax_grad_rows
// sha256:     f91aa946196ca7f76f00c1bc774aaecece7e395f92459d6f600531f33fe0c600 (SymPy expressions printed)
// op count:   float32 4, float64 4 (arithmetic ops and calls after CSE)
// Softmax-gradient rows (Def. 3.6 corrected): rvec_i = sum_l f_il q_il, p_ij = f_ij (q_ij -
// rvec_i), i.e. p = f*q - diag(rvec) f = dL/dS.
// arguments (then the sizes n_rows, n_cols, as const long long):
//   f        entry      softmax rows f
//   q        entry      q = c V^T
//   p        out_entry  p = dL/dS
//   rvec     out_row    rvec = (f*q) 1
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_softmax_grad_rows_f32(
    const float* __restrict__ f,
    const float* __restrict__ q,
    float* __restrict__ p,
    float* __restrict__ rvec,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        float acc_r = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const float v_f = f[base + j];
            const float v_q = q[base + j];
            const float term = v_f*v_q;
            acc_r += term;
        }
        for (long long j = 0; j < n_cols; ++j) {
            const float v_f = f[base + j];
            const float v_q = q[base + j];
            p[base + j] = v_f*(-acc_r + v_q);
        }
        rvec[row] = acc_r;
    }
}

extern "C" __global__ void vl_softmax_grad_rows_f64(
    const double* __restrict__ f,
    const double* __restrict__ q,
    double* __restrict__ p,
    double* __restrict__ rvec,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        double acc_r = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const double v_f = f[base + j];
            const double v_q = q[base + j];
            const double term = v_f*v_q;
            acc_r += term;
        }
        for (long long j = 0; j < n_cols; ++j) {
            const double v_f = f[base + j];
            const double v_q = q[base + j];
            p[base + j] = v_f*(-acc_r + v_q);
        }
        rvec[row] = acc_r;
    }
}
