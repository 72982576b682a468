/* Matrix-vector path of the GEMM engine: products where C has one row or one column
 * (vector . vector, matrix . vector, vector @ matrix). A packed GEMM would pad the single
 * row/column to a full register tile (16x the work) and pack a vector it reads once.
 * Called by pbn_gemm_* in gemm.c; the arguments are gemm.h's. */
#ifndef PBN_GEMV_H
#define PBN_GEMV_H
#include "gemm.h"

/* Handles the call when m == 1 or n == 1 (and k > 0): returns 1, or 0 to decline. */
int pbn_gemv_f32(pbn_int m, pbn_int n, pbn_int k,
                 const float *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                 const float *B, pbn_int rsb, pbn_int csb,
                 float *C, pbn_int rsc, pbn_int csc,
                 int accumulate, const float *bias, int relu, int n_threads);
int pbn_gemv_f64(pbn_int m, pbn_int n, pbn_int k,
                 const double *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                 const double *B, pbn_int rsb, pbn_int csb,
                 double *C, pbn_int rsc, pbn_int csc,
                 int accumulate, const double *bias, int relu, int n_threads);
#endif
