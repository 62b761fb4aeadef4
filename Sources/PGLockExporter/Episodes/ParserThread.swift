#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs libpg_query on a thread of its own with a stack large enough for any statement up to
/// `QueryText.parserInputLimit` bytes, and waits for it.
///
/// Why: libpg_query's parser and tree walkers recurse once per nesting level without checking the
/// stack. Measured with Debian's libpg_query 15-4.0.0 (`QueryTextTests`): on the 512 KiB stacks of
/// the exporter's own threads, `SELECT f(f(…(1)…))` 700 deep (about 2 KB of text) overflowed it
/// and killed the process; the costliest forms (`+ + … 1`, `x[x[…]]`) take up to 350 bytes of
/// stack per byte of statement. 32 KiB of statement therefore needs at most about 11 MiB; the
/// thread gets 64 MiB (address space, of which only the pages a parse touches become resident).
///
/// The wait has no deadline of its own: the body is a pure computation on at most
/// `parserInputLimit` bytes (a 1 MiB statement parses in about 60 ms), with no I/O to hang on.
enum ParserThread {
    static let stackBytes = 64 << 20

    /// The work travels to the thread in a retained box (a C thread entry cannot capture a generic
    /// type); its result comes back in another, which the child writes before it exits and the
    /// caller reads only after `pthread_join` has returned.
    private final class Work {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private final class Outcome<T> {
        var value: T?
    }

    /// `body`'s result, or nil when the system refused to create the thread (`body` then never ran).
    static func run<T>(_ body: @escaping () -> T) -> T? {
        let outcome = Outcome<T>()
        let work = Unmanaged.passRetained(Work { outcome.value = body() })
        defer { work.release() }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackBytes)
        var thread = pthread_t()
        let created = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Work>.fromOpaque(raw!).takeUnretainedValue().body()
            return nil
        }, work.toOpaque())
        guard created == 0 else { return nil }
        pthread_join(thread, nil)
        return outcome.value
    }
}
