// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:softmax_rows (template 'rows', used by exact)
// form:       verified_lora.symbolic.elementwise:softmax_rows
// sha256:     21ed95d79c25ce2169f01168e9e0808198e1cffc0671ed300890ae8dac9b58ee (SymPy expressions printed)
// op count:   float32 11, float64 11 (arithmetic ops and calls after CSE)
// Row softmax of beta*s with the row max subtracted (Def. 3.2-3.4): f_ij = exp(beta s_ij - m_i) /
// alpha_i, alpha_i = sum_l exp(beta s_il - m_i), m_i = max_l beta s_il.
// arguments (then the sizes n_rows, n_cols, as const long long):
//   s        entry      unscaled scores P K^T (n_rows x n_cols)
//   beta     scalar     inverse temperature
//   f        out_entry  f = softmax_rows(beta s)
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_softmax_rows_f32(
    const float* __restrict__ s,
    const float beta,
    float* __restrict__ f,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        float acc_m = 0;  /* set from column 0 below (n_cols >= 1) */
        for (long long j = 0; j < n_cols; ++j) {
            const float v_s = s[base + j];
            const float term = beta*v_s;
            acc_m = (j == 0) ? term : fmaxf(acc_m, term);
        }
        float acc_alpha = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const float v_s = s[base + j];
            const float term = expf(-acc_m + beta*v_s);
            acc_alpha += term;
        }
        for (long long j = 0; j < n_cols; ++j) {
            const float v_s = s[base + j];
            f[base + j] = expf(-acc_m + beta*v_s)*1.0F/acc_alpha;
        }
    }
}

extern "C" __global__ void vl_softmax_rows_f64(
    const double* __restrict__ s,
    const double beta,
    double* __restrict__ f,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        double acc_m = 0;  /* set from column 0 below (n_cols >= 1) */
        for (long long j = 0; j < n_cols; ++j) {
            const double v_s = s[base + j];
            const double term = beta*v_s;
            acc_m = (j == 0) ? term : fmax(acc_m, term);
        }
        double acc_alpha = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const double v_s = s[base + j];
            const double term = exp(-acc_m + beta*v_s);
            acc_alpha += term;
        }
        for (long long j = 0; j < n_cols; ++j) {
            const double v_s = s[base + j];
            f[base + j] = exp(-acc_m + beta*v_s)*1.0/acc_alpha;
        }
    }
}
