/* Prints the OpenBLAS kernel in use and one sgemm value: scripts/test-matrix.sh runs it under each
   OPENBLAS_CORETYPE to learn whether this CPU accepts that kernel (a forced AVX-512 kernel dies with
   SIGILL on a CPU without AVX-512). */
#include <stdio.h>
#include <cblas.h>
int main(void) {
    float a[64], b[64], c[64];
    for (int i = 0; i < 64; i++) { a[i] = i * 0.01f; b[i] = 1.0f - i * 0.02f; c[i] = 0; }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 8, 8, 8, 1.0f, a, 8, b, 8, 0.0f, c, 8);
    printf("%s %g\n", openblas_get_corename(), c[9]);
    return 0;
}
