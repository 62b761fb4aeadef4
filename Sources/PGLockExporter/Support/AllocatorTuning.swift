#if canImport(Glibc)
import CMalloc
#endif

/// How the exporter asks glibc's allocator to keep memory it frees.
///
/// By default glibc returns freed memory to the kernel as soon as a little more than the largest
/// recent block is free at the top of a heap. A scrape at 750 sessions allocates and frees about
/// half a MiB (the rows, the sessions, the exposition), so every scrape faulted some 60 pages
/// back in: about 0.2 of its 2 ms of CPU (`make bench`, `perf`). Keeping up to 4 MiB of freed
/// memory for reuse removes those faults for about 0.5 MiB more resident memory, flat over
/// scrapes (the soak in `make bench`).
public enum AllocatorTuning {
    /// Call once, before the service starts its threads.
    public static func keepFreedMemoryForReuse() {
        #if canImport(Glibc)
        // Fixed thresholds also turn off glibc's dynamic ones, which follow the largest block.
        _ = mallopt(M_MMAP_THRESHOLD, 4 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 4 << 20)
        #endif
    }
}
