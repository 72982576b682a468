"""Thread-count queries answered by the OpenMP runtime the kernels are linked against, and
the kernels' thread policy (kernels/pbn_runtime.h).

Going through the runtime (not a Python-side counter) is what makes ``OMP_NUM_THREADS`` and
``threadpoolctl.threadpool_limits(n, user_api="openmp")`` limit pyblasnn too.
"""
from _openmp cimport PBN_HAVE_OPENMP, omp_get_max_threads, omp_get_num_procs, omp_set_num_threads
from _runtime cimport PBN_IDLE_US, PBN_WAKE_US, PBN_LATE_US, PBN_SLACK_DIV, PBN_SOLO_MAX_SHIFT, PBN_SOLO_US, pbn_region_contended
from _runtime cimport (PBN_MAX_THREADS, PBN_N_PATHS, PBN_PARALLEL_MIN_ELEMENTS,
                       counters_of_module, pbn_default_team, pbn_forked_child, pbn_path_name,
                       pbn_reset_counters, pbn_runtime_init, pbn_backoff_state)
from cpython.pycapsule cimport PyCapsule_New

pbn_runtime_init()

#: The most threads any kernel uses; n_threads= and set_num_threads above it raise.
MAX_THREADS = PBN_MAX_THREADS
#: Element count below which element-wise, loss and optimizer kernels run on one thread.
PARALLEL_MIN_ELEMENTS = PBN_PARALLEL_MIN_ELEMENTS
#: Contention back-off (pbn_runtime.h): a team member this late (us), plus 1/SLACK_DIV of
#: the region's work time, marks a region contended; kernels then run on one thread for
#: SOLO_US << k us, k <= SOLO_MAX_SHIFT.
LATE_US = PBN_LATE_US
#: A region starting this long (us) after the team's last one is not measured (asleep).
IDLE_US = PBN_IDLE_US
#: ... unless it probes the team after a back-off: then measured, this much more allowed (us).
WAKE_US = PBN_WAKE_US
SLACK_DIV = PBN_SLACK_DIV
SOLO_US = PBN_SOLO_US
SOLO_MAX_SHIFT = PBN_SOLO_MAX_SHIFT


def region_contended(long long late_us, long long wait_us, long long work_us):
    """The back-off's rule (pbn_region_contended): does a region whose latest member started
    late_us late, whose caller waited wait_us at its end after work_us of its own work,
    count as contended?"""
    return bool(pbn_region_contended(late_us, wait_us, work_us))


def backoff_capsule():
    """The process's contention back-off state, which the kernel modules adopt on import."""
    return PyCapsule_New(pbn_backoff_state(), b"pyblasnn.backoff", NULL)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(PBN_HAVE_OPENMP)


def max_threads():
    """Threads a kernel uses with n_threads=None: omp_get_max_threads(), at most MAX_THREADS,
    and 1 in a forked child."""
    return pbn_default_team()


def omp_max_threads():
    """omp_get_max_threads() as the OpenMP runtime reports it."""
    return omp_get_max_threads()


def num_procs():
    """omp_get_num_procs(): processors available to this process."""
    return omp_get_num_procs()


def set_max_threads(int n):
    """omp_set_num_threads(n) for the calling thread."""
    omp_set_num_threads(n)


def forked_child():
    """True in a child created by fork() after pyblasnn was imported: kernels run serially."""
    return bool(pbn_forked_child())


def path_names():
    """Every kernel path the counters know, in their C order."""
    return [pbn_path_name(p).decode() for p in range(<int>PBN_N_PATHS)]


def path_counters():
    """{path: (calls, parallel entries)} counted by this module (it counts none)."""
    return counters_of_module()


def reset_path_counters():
    pbn_reset_counters()
