// libFuzzer entry for the SemplesFormats parsers; compiled together with the library sources by
// scripts/fuzz.sh. The parser is chosen with SEMPLES_FUZZ_TARGET (see FuzzEntry.targets).
import Foundation

nonisolated(unsafe) var fuzzTarget = "pickle"

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    fuzzTarget = ProcessInfo.processInfo.environment["SEMPLES_FUZZ_TARGET"] ?? "pickle"
    precondition(FuzzEntry.targets.contains(fuzzTarget), "unknown target '\(fuzzTarget)'; one of \(FuzzEntry.targets)")
    // Keep images small enough that a hostile header cannot exhaust the fuzzer's memory limit.
    ImageIO.maxPixels = 4_000_000
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = Data(bytes: bytes, count: size)
    if let error = FuzzEntry.run(fuzzTarget, data) {
        // Every refusal must be a FormatError that names the input.
        guard let e = error as? FormatError, e.path == FuzzEntry.inputName, !e.detail.isEmpty else {
            fatalError("\(fuzzTarget): unexpected error \(error)")
        }
    }
    return 0
}
