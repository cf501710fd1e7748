// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:normalised_residual_rows (template 'rows', used by fast(factored))
// form:       verified_lora.symbolic.elementwise:normalised_residual_rows
// sha256:     7115c5dc032eaa08f7466fe5a02fabea333a899a375ccbec0285f4f1834e59ca (SymPy expressions printed)
// op count:   float32 13, float64 13 (arithmetic ops and calls after CSE)
// Factored forward rows (Lemmas 3.3-3.4, 3.7): f~V = t/D~, c~ = f~V - Y, rvec~_i = <c~_i,
// (f~V)_i>, and [c~, -rvec~]/D~, whose product with [V, 1]^T is dL~/dA~ = (q~ - rvec~)/D~.
// arguments (then the sizes n_rows, n_cols, as const long long):
//   t        entry      A~ V = Phi_U (Phi_V^T V)
//   d        row        D~ = A~ 1
//   y        entry      target Y
//   c        out_entry  c~ = t/D~ - Y
//   yp       out_entry  c~ / D~
//   rvec     out_row    rvec~ = sum_a c~_a t_a / D~
//   rneg     out_row    -rvec~ / D~
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_normalised_residual_rows_f32(
    const float* __restrict__ t,
    const float* __restrict__ d,
    const float* __restrict__ y,
    float* __restrict__ c,
    float* __restrict__ yp,
    float* __restrict__ rvec,
    float* __restrict__ rneg,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        float acc_r = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const float v_d = d[row];
            const float v_t = t[base + j];
            const float v_y = y[base + j];
            const float cse0 = 1.0F/v_d;
            const float term = cse0*v_t*(cse0*v_t - v_y);
            acc_r += term;
        }
        for (long long j = 0; j < n_cols; ++j) {
            const float v_d = d[row];
            const float v_t = t[base + j];
            const float v_y = y[base + j];
            const float cse0 = 1.0F/v_d;
            const float cse1 = cse0*v_t - v_y;
            c[base + j] = cse1;
            yp[base + j] = cse0*cse1;
        }
        const float v_d = d[row];
        rvec[row] = acc_r;
        rneg[row] = -acc_r*1.0F/v_d;
    }
}

extern "C" __global__ void vl_normalised_residual_rows_f64(
    const double* __restrict__ t,
    const double* __restrict__ d,
    const double* __restrict__ y,
    double* __restrict__ c,
    double* __restrict__ yp,
    double* __restrict__ rvec,
    double* __restrict__ rneg,
    const long long n_rows,
    const long long n_cols)
{
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < n_rows; row += (long long)blockDim.x * gridDim.x) {
        const long long base = row * n_cols;
        double acc_r = 0;
        for (long long j = 0; j < n_cols; ++j) {
            const double v_d = d[row];
            const double v_t = t[base + j];
            const double v_y = y[base + j];
            const double cse0 = 1.0/v_d;
            const double term = cse0*v_t*(cse0*v_t - v_y);
            acc_r += term;
        }
        for (long long j = 0; j < n_cols; ++j) {
            const double v_d = d[row];
            const double v_t = t[base + j];
            const double v_y = y[base + j];
            const double cse0 = 1.0/v_d;
            const double cse1 = cse0*v_t - v_y;
            c[base + j] = cse1;
            yp[base + j] = cse0*cse1;
        }
        const double v_d = d[row];
        rvec[row] = acc_r;
        rneg[row] = -acc_r*1.0/v_d;
    }
}
