// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:residual (template 'elementwise', used by exact, fast(paper))
// form:       verified_lora.symbolic.elementwise:residual
// sha256:     e3345d6840dfa4707a06ef022b06ffa3fe3acf99cd227af51c7dbf4d39b1cae2 (SymPy expressions printed)
// op count:   float32 1, float64 1 (arithmetic ops and calls after CSE)
// Residual c = f V - Y entrywise (Def. 3.5).
// arguments (then the sizes n_rows, n_cols, as const long long):
//   fv       entry      the GEMM f V
//   y        entry      target Y
//   c        out_entry  c = f V - Y
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_residual_f32(
    const float* __restrict__ fv,
    const float* __restrict__ y,
    float* __restrict__ c,
    const long long n_rows,
    const long long n_cols)
{
    const long long n = n_rows * n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const float v_fv = fv[i];
        const float v_y = y[i];
        c[i] = v_fv - v_y;
    }
}

extern "C" __global__ void vl_residual_f64(
    const double* __restrict__ fv,
    const double* __restrict__ y,
    double* __restrict__ c,
    const long long n_rows,
    const long long n_cols)
{
    const long long n = n_rows * n_cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const double v_fv = fv[i];
        const double v_y = y[i];
        c[i] = v_fv - v_y;
    }
}
