import CAllocCount

/// The process's heap allocations, counted by the allocator wrappers of `CAllocCount`.
/// `semples bench` reads it around each timed loop.
public enum AllocationCount {
    /// False in sanitizer builds, where the sanitizer owns malloc and nothing is counted.
    public static var isCounting: Bool { semples_allocation_counting() != 0 }

    /// Allocations since the process started.
    public static var total: Int { Int(semples_allocation_count()) }

    /// Runs body and returns its result with the number of heap allocations made meanwhile
    /// (by any thread of the process).
    public static func counting<T>(_ body: () throws -> T) rethrows -> (value: T, allocations: Int) {
        let before = total
        let value = try body()
        return (value, total - before)
    }
}
