// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:paper_grad_rows (template 'elementwise', used by fast(paper))
// form:       verified_lora.symbolic.elementwise:paper_grad_rows
// sha256:     db9723d42bb4b38a0406e4dd6df975a10e8840dcdcb0ca0989aeeb0fc1316789 (SymPy expressions printed)
// op count:   float32 3, float64 3 (arithmetic ops and calls after CSE)
// o_ij = beta (a_ij - r_i b_ij): dL/dP = beta (p1~ - diag(rvec~) f~) K (Lemma 3.2, Theorem 3.1).
// arguments (then the sizes n_rows, n_cols, as const long long):
//   a        entry      p1~ K = U3 (V3^T K)
//   b        entry      f~ K = U1 (V1^T K)
//   r        row        rvec~
//   beta     scalar     inverse temperature
//   o        out_entry  dL/dP = beta p~ K
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_paper_grad_rows_f32(
    const float* __restrict__ a,
    const float* __restrict__ b,
    const float* __restrict__ r,
    const float beta,
    float* __restrict__ o,
    const long long n_rows,
    const long long n_cols)
{
    const long long n = n_rows * n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / n_cols;
        const float v_a = a[i];
        const float v_b = b[i];
        const float v_r = r[row];
        o[i] = beta*(v_a - v_b*v_r);
    }
}

extern "C" __global__ void vl_paper_grad_rows_f64(
    const double* __restrict__ a,
    const double* __restrict__ b,
    const double* __restrict__ r,
    const double beta,
    double* __restrict__ o,
    const long long n_rows,
    const long long n_cols)
{
    const long long n = n_rows * n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / n_cols;
        const double v_a = a[i];
        const double v_b = b[i];
        const double v_r = r[row];
        o[i] = beta*(v_a - v_b*v_r);
    }
}
