/* Blocked GEMM driver, included by gemm.c once per (dtype, register tile). Expects:
 *   T, DT (f32 / f64), SFX (the instance: dtype and tile, e.g. f32_6x16), MR, NR (register
 *   tile), KC, MC, NC (cache blocks), UKR_T (kernel type); all undefined again at the end.
 *   The args_<DT> struct is defined by gemm.c (shared by the instances of a dtype). The micro-kernel is an argument:
 *   the ISA's kernel of this tile, or the portable one (FN(ukr_portable)).
 *
 * Loop nest (BLIS order) of the serial body, for one rectangle of C:
 *   jc: NC columns                    B sliver (KC x NC) packed into NR-column panels (L3)
 *    pc: KC-deep slice of k           never split across threads
 *     ic: MC rows                     A block (MC x KC) packed into MR-row panels (L2),
 *                                     or read in place (the "sup" path, see pbn_choose_pack_a)
 *      jr, ir: MR x NR tiles          micro-kernel; B micro-panel stays in L1
 * Threads: C is cut into a tm x tn grid of rectangles (MR/NR aligned); each thread runs the
 * serial body on its rectangle with private packing buffers, so there are no barriers.
 * Every C element sums its products in KC slices that depend on k only, each slice in
 * p order inside the kernel, so the result never depends on the thread count. */

#define FN(name) PBN_CAT(name, SFX)

#define ARGS PBN_CAT(args, DT)

/* Portable micro-kernel: plain C, same tile shape and contract as the SIMD one. */
__attribute__((unused))
static void FN(ukr_portable)(pbn_int kc, const T *const *a, pbn_int as, const T *b, pbn_int bs,
                             T *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                             int load_c, const T *bias, int relu)
{
    T acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = 0;
    for (pbn_int p = 0; p < kc; p++) {
        const T *bp = b + p * bs;
        for (int i = 0; i < MR; i++) {
            const T ai = a[i][p * as];
            for (int j = 0; j < NR; j++) acc[i][j] += ai * bp[j];
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            T *cp = c + i * rsc + j * csc;
            *cp = PBN_EPILOGUE(acc[i][j], cp, load_c, bias ? bias + j : NULL, relu);
        }
}

/* Pack rows i0..i0+mr (mr <= MR) x cols p0..p0+kc of A into one MR x kc panel,
 * element (i, p) at dst[p * MR + i]; rows past mr are zero. */
static void FN(pack_a_panel)(const ARGS *g, pbn_int i0, int mr, pbn_int p0, pbn_int kc,
                             T *restrict dst)
{
    const T *r[MR];
    for (int i = 0; i < MR; i++) {
        pbn_int row = i0 + (i < mr ? i : 0);
        if (g->a_rows) row = g->a_rows[row];
        r[i] = g->A + row * g->rsa + p0 * g->csa;
    }
    const pbn_int csa = g->csa;
    if (mr == MR && csa == 1) {                       /* row-major A: MR streams */
        for (pbn_int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++) dst[p * MR + i] = r[i][p];
    } else if (mr == MR && g->rsa == 1 && !g->a_rows) { /* transposed A: MR contiguous */
        const T *s = r[0];
        for (pbn_int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++) dst[p * MR + i] = s[p * csa + i];
    } else {
        for (pbn_int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++) dst[p * MR + i] = i < mr ? r[i][p * csa] : (T)0;
    }
}

/* Pack rows p0..p0+kc x cols j0..j0+nr (nr <= NR) of B into one kc x NR panel,
 * element (p, j) at dst[p * NR + j]; columns past nr are zero. */
static void FN(pack_b_panel)(const ARGS *g, pbn_int p0, pbn_int kc, pbn_int j0, int nr,
                             T *restrict dst)
{
    const pbn_int rsb = g->rsb, csb = g->csb;
    const T *src = g->B + p0 * rsb + j0 * csb;
    if (nr == NR && csb == 1) {                       /* row-major B: NR contiguous */
        for (pbn_int p = 0; p < kc; p++)
            for (int j = 0; j < NR; j++) dst[p * NR + j] = src[p * rsb + j];
    } else if (rsb == 1) {                            /* transposed B: columns contiguous */
        for (int j = 0; j < NR; j++) {
            if (j < nr) {
                const T *s = src + j * csb;
                for (pbn_int p = 0; p < kc; p++) dst[p * NR + j] = s[p];
            } else {
                for (pbn_int p = 0; p < kc; p++) dst[p * NR + j] = 0;
            }
        }
    } else {
        for (pbn_int p = 0; p < kc; p++)
            for (int j = 0; j < NR; j++) dst[p * NR + j] = j < nr ? src[p * rsb + j * csb] : (T)0;
    }
}

/* Balanced KC: the number of k slices is ceil(k / KC) and the slices are as even as
 * possible. Depends on k only, so every C element sees the same slices whatever part
 * of C a thread computes. */
static inline pbn_int FN(kc_block)(pbn_int k)
{
    pbn_int nk = (k + KC - 1) / KC;
    return (k + nk - 1) / nk;
}

/* Serial blocked GEMM on rows i_lo..i_hi, columns j_lo..j_hi of C (the whole k range).
 * Bp holds kc_block x round_up(min(cols, NC), NR) elements; Ap MC x kc_block (if pack_a).
 * Threads run it on disjoint rectangles of C, with private buffers and no barriers. */
static void FN(gemm_body)(const ARGS *g, UKR_T ukr, int pack_a, int pack_b, T *Bp, T *Ap,
                          pbn_int i_lo, pbn_int i_hi, pbn_int j_lo, pbn_int j_hi)
{
    const pbn_int k = g->k, kcb = FN(kc_block)(k);
    const T *arow[MR];
    for (pbn_int jc = j_lo; jc < j_hi; jc += NC) {
        const pbn_int nc = j_hi - jc < NC ? j_hi - jc : NC;
        const pbn_int npn = (nc + NR - 1) / NR;
        for (pbn_int pc = 0; pc < k; pc += kcb) {
            const pbn_int kc = k - pc < kcb ? k - pc : kcb;
            const int load_c = pc > 0 || g->accumulate;
            const int last = pc + kc == k;
            const T *bias = last ? g->bias : NULL;
            const int relu = last && g->relu;

            for (pbn_int q = 0; q < npn; q++) {
                const pbn_int j0 = jc + q * NR;
                const int nr = (int)(j_hi - j0 < NR ? j_hi - j0 : NR);
                if (pack_b || nr < NR) FN(pack_b_panel)(g, pc, kc, j0, nr, Bp + q * NR * kc);
            }
            for (pbn_int ic = i_lo; ic < i_hi; ic += MC) {
                const pbn_int mc = i_hi - ic < MC ? i_hi - ic : MC;
                const pbn_int npm = (mc + MR - 1) / MR;
                if (pack_a)
                    for (pbn_int q = 0; q < npm; q++) {
                        const pbn_int i0 = ic + q * MR;
                        FN(pack_a_panel)(g, i0, (int)(i_hi - i0 < MR ? i_hi - i0 : MR), pc, kc,
                                         Ap + q * MR * kc);
                    }
                /* jr outer, ir inner: one B micro-panel stays in L1 across the A panels */
                for (pbn_int jr = 0; jr < npn; jr++) {
                    const pbn_int j0 = jc + jr * NR;
                    const int nr = (int)(j_hi - j0 < NR ? j_hi - j0 : NR);
                    const T *bsl = Bp + jr * NR * kc;
                    pbn_int bs = NR;
                    if (!pack_b && nr == NR) { bsl = g->B + pc * g->rsb + j0; bs = g->rsb; }
                    for (pbn_int ir = 0; ir < npm; ir++) {
                        const pbn_int i0 = ic + ir * MR;
                        const int mr = (int)(i_hi - i0 < MR ? i_hi - i0 : MR);
                        pbn_int as;
                        if (pack_a) {
                            const T *panel = Ap + ir * MR * kc;
                            for (int i = 0; i < MR; i++) arow[i] = panel + i;
                            as = MR;
                        } else {
                            for (int i = 0; i < MR; i++) {
                                pbn_int row = i0 + (i < mr ? i : 0);
                                if (g->a_rows) row = g->a_rows[row];
                                arow[i] = g->A + row * g->rsa + pc * g->csa;
                            }
                            as = g->csa;
                        }
                        ukr(kc, arow, as, bsl, bs, g->C + i0 * g->rsc + j0 * g->csc,
                            g->rsc, g->csc, mr, nr, load_c, bias ? bias + j0 : NULL, relu);
                    }
                }
            }
        }
    }
}

/* k == 0: the epilogue of an empty sum (C := (accumulate ? C + 0 : 0) + bias, relu). */
static void FN(gemm_k0)(const ARGS *g)
{
    for (pbn_int i = 0; i < g->m; i++)
        for (pbn_int j = 0; j < g->n; j++) {
            T *cp = g->C + i * g->rsc + j * g->csc;
            *cp = PBN_EPILOGUE((T)0, cp, g->accumulate, g->bias ? g->bias + j : NULL, g->relu);
        }
}

/* Fallback when the packing buffers cannot be allocated: one dot product per element. */
static void FN(gemm_naive_rect)(const ARGS *g, pbn_int i_lo, pbn_int i_hi, pbn_int j_lo, pbn_int j_hi)
{
    for (pbn_int i = i_lo; i < i_hi; i++) {
        const T *a = g->A + (g->a_rows ? g->a_rows[i] : i) * g->rsa;
        for (pbn_int j = j_lo; j < j_hi; j++) {
            T *cp = g->C + i * g->rsc + j * g->csc, s = 0;
            for (pbn_int p = 0; p < g->k; p++) s += a[p * g->csa] * g->B[p * g->rsb + j * g->csb];
            *cp = PBN_EPILOGUE(s, cp, g->accumulate, g->bias ? g->bias + j : NULL, g->relu);
        }
    }
}

static void FN(gemm_naive)(const ARGS *g) { FN(gemm_naive_rect)(g, 0, g->m, 0, g->n); }

static size_t FN(bp_elems)(pbn_int n, pbn_int k)
{
    pbn_int nc = n < NC ? n : NC;
    return (size_t)FN(kc_block)(k) * (size_t)((nc + NR - 1) / NR * NR);
}

static size_t FN(ap_elems)(pbn_int m, pbn_int k)
{
    pbn_int mc = m < MC ? m : MC;
    return (size_t)FN(kc_block)(k) * (size_t)((mc + MR - 1) / MR * MR);
}

/* Thread grid tm x tn over C: thread (a, b) computes row block a, column block b.
 * A is packed once per column block and B once per row block, so pick the grid that
 * duplicates the least packing, with at least one MR x NR tile per thread. */
static void FN(thread_grid)(pbn_int m, pbn_int n, pbn_int k, int nth, int *tm, int *tn)
{
    const pbn_int pm = (m + MR - 1) / MR, pn = (n + NR - 1) / NR;
    *tm = 1; *tn = 1;
    /* the most threads (up to nth) that some grid can keep busy; with big tiles a small C
     * may have fewer tiles than a divisor grid of nth needs (13 x 17 is 2 x 1 tiles of 12 x 32) */
    for (int t = nth; t > 1; t--) {
        double best = -1;
        for (int b = 1; b <= t; b++) {
            if (t % b) continue;
            const int a = t / b;
            if (a > pm || b > pn) continue;
            /* elements packed in all: A once per column block, B once per row block */
            const double cost = (double)b * (double)m * (double)k + (double)a * (double)k * (double)n;
            if (best < 0 || cost < best) { best = cost; *tm = a; *tn = b; }
        }
        if (best >= 0) return;
    }
}

static void FN(gemm)(const ARGS *g, int n_threads, UKR_T ukr)
{
    if (g->m <= 0 || g->n <= 0) return;
    if (g->k <= 0) { FN(gemm_k0)(g); return; }
    ARGS t;
    const int swap = pbn_choose_swap(g->m, g->n, g->k, g->rsa, g->csa, g->a_rows, g->bias);
    if (swap) {
        /* C^T = B^T A^T (see pbn_choose_swap); from here on g is the transposed problem */
        t = (ARGS){ g->n, g->m, g->k, g->B, g->csb, g->rsb, NULL, g->A, g->csa, g->rsa,
                        g->C, g->csc, g->rsc, g->accumulate, NULL, g->relu };
        g = &t;
    }
    const int pack_a = pbn_choose_pack_a(g->m, g->n, g->k);
    const int pack_b = !(pbn_choose_read_b(g->m, g->n, g->k) && g->csb == 1);
    const double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    int nt = n_threads < 1 ? 1 : n_threads;
    if (flops < PBN_PARALLEL_MIN_FLOPS) nt = 1;
    int tm = 1, tn = 1;
    if (nt > 1) FN(thread_grid)(g->m, g->n, g->k, nt, &tm, &tn);
    nt = tm * tn;
    pbn_region reg;
    if (pbn_region_begin(&reg, nt) == 1) { nt = 1; tm = 1; tn = 1; }  /* backing off */
    pbn_count(swap ? PBN_PATH_GEMM_SWAP : PBN_PATH_GEMM_PACKED, nt);

    /* per-thread buffers: B panels for the thread's columns, A panels for its rows */
    const pbn_int pm = (g->m + MR - 1) / MR, pn = (g->n + NR - 1) / NR;
    const pbn_int cols = (pn + tn - 1) / tn * NR, rows = (pm + tm - 1) / tm * MR;
    const size_t nb = FN(bp_elems)(cols, g->k), na = pack_a ? FN(ap_elems)(rows, g->k) : 0;
    const size_t bytes = (nb + na + 16) * sizeof(T);

    if (nt == 1) {
        T *buf = (T *)pbn_scratch(bytes);
        if (!buf) { FN(gemm_naive)(g); return; }  /* out of memory: slow but correct */
        FN(gemm_body)(g, ukr, pack_a, pack_b, buf, buf + nb, 0, g->m, 0, g->n);
        pbn_scratch_done();
    } else {
        _Pragma("omp parallel for num_threads(nt) schedule(static)")
        for (int t = 0; t < nt; t++) {
            pbn_region_check(&reg);
            const int a = t / tn, b = t % tn;
            const pbn_int i_lo = pm * a / tm * MR, i_hi = pm * (a + 1) / tm * MR;
            const pbn_int j_lo = pn * b / tn * NR, j_hi = pn * (b + 1) / tn * NR;
            ARGS sub = *g;  /* the rectangle, for the naive fallback */
            sub.m = (i_hi < g->m ? i_hi : g->m) - i_lo; sub.n = (j_hi < g->n ? j_hi : g->n) - j_lo;
            T *bt = (T *)pbn_scratch(bytes);
            if (bt) {
                FN(gemm_body)(g, ukr, pack_a, pack_b, bt, bt + nb, i_lo, i_lo + sub.m, j_lo, j_lo + sub.n);
                pbn_scratch_done();
            } else {
                FN(gemm_naive_rect)(g, i_lo, i_lo + sub.m, j_lo, j_lo + sub.n);
            }
            pbn_region_done(&reg);
        }
        pbn_region_end(&reg, nt);
    }
}

static void FN(gemm_batched)(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
        const T *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
        const T *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
        T *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc, int n_threads, UKR_T ukr)
{
    if (batch <= 0 || m <= 0 || n <= 0) return;
    const int pack_a = k > 0 && pbn_choose_pack_a(m, n, k);
    const int pack_b = !(k > 0 && pbn_choose_read_b(m, n, k) && csb == 1);
    const double flops = 2.0 * (double)m * (double)n * (double)(k > 0 ? k : 1) * (double)batch;
    int nt = n_threads < 1 ? 1 : n_threads;
    if (flops < PBN_PARALLEL_MIN_FLOPS) nt = 1;
    if (nt > batch) nt = (int)batch;
    pbn_region reg;
    nt = pbn_region_begin(&reg, nt);
    const PBN_CAT(pbn_tiny, DT) tiny =
        k > 0 && m <= PBN_TINY_MAX && k <= PBN_TINY_MAX && csb == 1 && csc == 1
        ? PBN_CAT(pbn_tiny_kernel, DT)(n) : NULL;
    pbn_count(tiny ? PBN_PATH_GEMM_BATCHED_TINY : PBN_PATH_GEMM_BATCHED, nt);
    const size_t nb = k > 0 ? FN(bp_elems)(n, k) : 0, na = pack_a ? FN(ap_elems)(m, k) : 0;

    if (tiny) {  /* small products: no packing (gemm_tiny.c); thread t takes a fixed range */
        _Pragma("omp parallel for num_threads(nt) schedule(static)")
        for (int t = 0; t < nt; t++) {
            pbn_region_check(&reg);
            const pbn_int lo = batch * t / nt, hi = batch * (t + 1) / nt;
            for (pbn_int b = lo; b < hi; b++)
                tiny(m, n, k, A + a_off[b], rsa, csa, B + b_off[b], rsb, C + c_off[b], rsc);
            pbn_region_done(&reg);
        }
        pbn_region_end(&reg, nt);
        return;
    }

    _Pragma("omp parallel num_threads(nt)")
    {
        pbn_region_check(&reg);
        T *Bp = (T *)pbn_scratch((nb + na + 16) * sizeof(T)), *Ap = Bp ? Bp + nb : NULL;
        /* each product is computed whole by one thread, so which thread takes it does not
         * change its bits: dynamic chunks keep both cores busy when one is shared */
        _Pragma("omp for schedule(dynamic, 8) nowait")
        for (pbn_int b = 0; b < batch; b++) {
            ARGS g = { m, n, k, A + a_off[b], rsa, csa, NULL, B + b_off[b], rsb, csb,
                           C + c_off[b], rsc, csc, 0, NULL, 0 };
            if (k <= 0) FN(gemm_k0)(&g);
            else if (Bp) FN(gemm_body)(&g, ukr, pack_a, pack_b, Bp, Ap, 0, m, 0, n);
            else FN(gemm_naive)(&g);
        }
        if (Bp) pbn_scratch_done();
        pbn_region_done(&reg);
    }
    pbn_region_end(&reg, nt);
}

#undef FN
#undef ARGS
/* the parameters of this instantiation: gemm.c defines them again for the next one */
#undef T
#undef SFX
#undef DT
#undef MR
#undef NR
#undef KC
#undef MC
#undef NC
#undef UKR_T
