// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.
// spec:       verified_lora.codegen.specs:contract_rows (template 'row_contract', used by fast(factored))
// form:       verified_lora.symbolic.elementwise:contract_term
// sha256:     766a39f0d6d7167058949df0701fa1e8b6906d8696623212950cc1e9e6a652ff (SymPy expressions printed)
// op count:   float32 2, float64 2 (arithmetic ops and calls after CSE)
// Feature backward contraction out[i, j] = sum_a z[i, j n_inner + a] y[i, a]
// (features.maps.lowrank_vjp_t after its GEMM).
// arguments (then the sizes n_rows, n_out, n_inner, as const long long):
//   z        entry      Z = M'^T Dc (n x n_out n_inner)
//   y        entry      Y (n x n_inner)
//   out      out_entry  dL/dx (n x n_out)
// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.

extern "C" __global__ void vl_contract_rows_f32(
    const float* __restrict__ z,
    const float* __restrict__ y,
    float* __restrict__ out,
    const long long n_rows,
    const long long n_out,
    const long long n_inner)
{
    const long long total = n_rows * n_out;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / n_out;
        const long long j = i - row * n_out;
        const long long zb = (row * n_out + j) * n_inner;
        float acc = 0;
        for (long long a = 0; a < n_inner; ++a) {
            const float v_z = z[zb + a];
            const float v_y = y[row * n_inner + a];
            const float term = v_y*v_z;
            acc += term;
        }
        out[i] = acc;
    }
}

extern "C" __global__ void vl_contract_rows_f64(
    const double* __restrict__ z,
    const double* __restrict__ y,
    double* __restrict__ out,
    const long long n_rows,
    const long long n_out,
    const long long n_inner)
{
    const long long total = n_rows * n_out;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        const long long row = i / n_out;
        const long long j = i - row * n_out;
        const long long zb = (row * n_out + j) * n_inner;
        double acc = 0;
        for (long long a = 0; a < n_inner; ++a) {
            const double v_z = z[zb + a];
            const double v_y = y[row * n_inner + a];
            const double term = v_y*v_z;
            acc += term;
        }
        out[i] = acc;
    }
}
