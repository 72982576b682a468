# The instruction set the kernels use (pbn_isa.h). Cimporting this module compiles the
# choice's definitions into the importing extension module, once; the helpers below are the
# per-module Python API (isa, set_isa, variants_ran, ...) each kernel module exposes.
cdef extern from "pbn_isa_impl.h":
    pass

cdef extern from "pbn_isa.h" nogil:
    enum: PBN_ISA_COUNT
    enum: PBN_N_LOOPS
    void pbn_isa_init()
    const char *pbn_isa_name(int isa)
    int pbn_isa_parse(const char *name)
    int pbn_isa_best()
    int pbn_isa_initial()
    int pbn_isa_supported(int isa)
    int pbn_isa()
    int pbn_isa_set(int isa)
    const char *pbn_isa_env_error()
    const char *pbn_isa_cpu_list()
    int pbn_isa_env_check(const char *value, char *err, size_t n)
    void pbn_isa_simulate_cpu(int best)
    unsigned pbn_variants_ran(int loop)
    const char *pbn_loop_name(int loop)
    void pbn_reset_variants()


cdef inline void init_isa_of_module() except *:
    """Detect the CPU and read PYBLASNN_ISA (at import): a name the CPU lacks, or an unknown
    one, is a ValueError, so no module runs code the CPU cannot."""
    pbn_isa_init()
    cdef const char *err = pbn_isa_env_error()
    if err != NULL:
        raise ValueError(err.decode())


cdef inline int isa_code(object name, str op) except -1:
    """The ISA index of name ("avx512", "avx2", "portable"); errors name op."""
    if not isinstance(name, str):
        raise TypeError(f"{op}: isa must be a str, got {type(name).__name__}")
    cdef int code = pbn_isa_parse(name.encode())
    if code < 0:
        raise ValueError(f"{op}: isa must be one of 'avx512', 'avx2', 'portable', got {name!r}")
    return code


cdef inline int supported_isa_code(object name, str op) except -1:
    """isa_code, and a ValueError naming what the CPU has when it lacks that ISA."""
    cdef int code = isa_code(name, op)
    if not pbn_isa_supported(code):
        raise ValueError(f"{op}: this CPU (or its OS) does not support {name!r}; it has: "
                         f"{pbn_isa_cpu_list().decode()}")
    return code


cdef inline str isa_of_module():
    return pbn_isa_name(pbn_isa()).decode()


cdef inline void set_isa_of_module(object name) except *:
    pbn_isa_set(supported_isa_code(name, "set_isa"))


cdef inline void simulate_cpu_of_module(object best) except *:
    pbn_isa_simulate_cpu(-1 if best is None else isa_code(best, "_simulate_cpu"))


cdef inline dict variants_of_module():
    """{loop name: [ISAs whose variant of it ran]} for the loops that ran since the reset."""
    cdef int loop, i
    cdef unsigned bits
    cdef dict res = {}
    for loop in range(<int>PBN_N_LOOPS):
        bits = pbn_variants_ran(loop)
        if bits:
            res[pbn_loop_name(loop).decode()] = [pbn_isa_name(i).decode()
                                                 for i in range(<int>PBN_ISA_COUNT - 1, -1, -1)
                                                 if bits & (1u << i)]
    return res


cdef extern from "pbn_variants.h":
    int PBN_VARIANT_ISAS


cdef inline list variant_isas_of_module():
    """The ISAs that have their own compiled copy of this module's loops, best first (the
    others run the portable copy: a build without GCC's x86 target pragmas)."""
    cdef int i
    return [pbn_isa_name(i).decode() for i in range(<int>PBN_ISA_COUNT - 1, -1, -1)
            if PBN_VARIANT_ISAS & (1 << i)]
