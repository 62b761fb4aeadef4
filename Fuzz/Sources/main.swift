import CLibFuzzer

#if canImport(Glibc)
import Glibc
#endif

/// The fuzz executable: libFuzzer's driver, calling `fuzzOneInput` for every input.
///
/// One binary serves every target, so `scripts/fuzz` builds the instrumented library once; the
/// target is the one `PG_LOCK_EXPORTER_FUZZ_TARGET` names. A target crashes (and libFuzzer keeps
/// the input) when a parser traps or when an invariant it checks with `FuzzCheck.require` breaks.
func runFuzzer() -> Never {
    _ = FuzzTargets.selected  // an unknown name stops here, before libFuzzer starts
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTargets.selected.run(bytes)
    return 0
}

runFuzzer()
