// Holding a stream: a one-thread kernel that waits `ns` nanoseconds of the
// GPU's global timer. Work the host enqueues behind it meanwhile then runs
// back to back, so events around that work time the GPU alone, not the
// host's launch gaps (tactic timing and per-layer profiles use it).

extern "C" __global__ void spin(long long ns) {
    if (threadIdx.x != 0 || blockIdx.x != 0) {
        return;
    }
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < (unsigned long long)ns);
}
