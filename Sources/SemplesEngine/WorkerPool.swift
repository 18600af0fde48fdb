#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Persistent worker threads for `Parallel`: a run hands out indices 0..<n, the caller taking 0.
///
/// Compared with DispatchQueue.concurrentPerform (about four allocations per call on Linux), a run
/// here costs one 32-byte closure context (none through `run(width:job:entry:)`, which GEMM panels
/// and the kernel forms of `Parallel`'s loops use) and two futex wake-ups. A run started while another
/// is in progress (nested parallel loops, or a second calling thread) executes serially in its caller.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let finished: UnsafeMutablePointer<pthread_cond_t>
    // All fields below are guarded by `mutex`.
    private var threadCount = 0
    private var generation = 0
    private var pending = 0
    private var jobWidth = 0
    private var busy = false
    /// The running body while a run is active: the address of the caller's closure value, which
    /// lives on the caller's stack for the whole run (storing the closure itself in this object
    /// would copy its context to the heap: one allocation per run).
    private var job: UnsafeRawPointer?
    /// How the workers call `job`: a C function of (job, index), so that the engine's own runs
    /// (GEMM panels) hand their work over with no closure at all.
    private var jobEntry: (@convention(c) (UnsafeRawPointer, Int) -> Void)?

    /// The entry of closure runs: `job` points at a `JobBox`.
    private static let closureEntry: @convention(c) (UnsafeRawPointer, Int) -> Void = { address, index in
        address.assumingMemoryBound(to: JobBox.self).pointee.body(index)
    }

    private init() {
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        finished = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
    }

    /// Runs body(i) for i in 0..<width, concurrently on up to width threads (the caller is one).
    func run(width: Int, _ body: (Int) -> Void) {
        if width <= 1 {
            if width == 1 { body(0) }
            return
        }
        // Handing a closure to another thread needs it as an escaping value: Swift makes a
        // 32-byte context for that (one allocation per run). `run(width:job:entry:)` has none.
        withoutActuallyEscaping(body) { body in
            // A concrete struct, so that taking its address needs no reabstraction thunk.
            var box = JobBox(body: body)
            withUnsafePointer(to: &box) { address in
                run(width: width, job: UnsafeRawPointer(address), entry: WorkerPool.closureEntry)
            }
        }
    }

    /// Runs entry(job, i) for i in 0..<width, concurrently; allocates nothing. `job` must stay
    /// valid until the call returns.
    func run(width: Int, job: UnsafeRawPointer, entry: @convention(c) (UnsafeRawPointer, Int) -> Void) {
        if width <= 1 {
            if width == 1 { entry(job, 0) }
            return
        }
        pthread_mutex_lock(mutex)
        if busy {
            pthread_mutex_unlock(mutex)
            for i in 0..<width { entry(job, i) }
            return
        }
        busy = true
        while threadCount < width - 1 { startThread(index: threadCount + 1) }
        pthread_mutex_unlock(mutex)
        dispatch(width: width, job: job, entry: entry)
    }

    /// Publishes a job to the workers, runs index 0 here and waits for the rest. Called with
    /// `busy` set by this caller.
    private func dispatch(width: Int, job address: UnsafeRawPointer,
                          entry: @convention(c) (UnsafeRawPointer, Int) -> Void) {
        pthread_mutex_lock(mutex)
        job = address
        jobEntry = entry
        jobWidth = width
        pending = threadCount
        generation &+= 1
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)

        entry(address, 0)

        pthread_mutex_lock(mutex)
        while pending > 0 { pthread_cond_wait(finished, mutex) }
        job = nil
        jobEntry = nil
        busy = false
        pthread_mutex_unlock(mutex)
    }

    /// Must be called with the mutex held.
    private func startThread(index: Int) {
        threadCount += 1
        let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index, generation: generation)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
            ctx.pool.workerLoop(index: ctx.index, seen: ctx.generation)
            return nil
        }, context)
        precondition(rc == 0, "pthread_create failed with \(rc)")
        pthread_detach(thread)
    }

    /// `seen`: the generation current when the thread was created (read under the mutex by the
    /// creator, so a run published before this thread first takes the lock is not missed).
    private func workerLoop(index: Int, seen start: Int) {
        var seen = start
        pthread_mutex_lock(mutex)
        while true {
            while generation == seen { pthread_cond_wait(wake, mutex) }
            seen = generation
            let width = jobWidth
            if index < width, let address = job, let entry = jobEntry {
                pthread_mutex_unlock(mutex)
                entry(address, index)
                pthread_mutex_lock(mutex)
            }
            pending -= 1
            if pending == 0 { pthread_cond_signal(finished) }
        }
    }
}

/// The body of a run, held on the caller's stack.
private struct JobBox {
    let body: (Int) -> Void
}

private final class WorkerContext {
    let pool: WorkerPool
    let index: Int
    let generation: Int
    init(pool: WorkerPool, index: Int, generation: Int) {
        self.pool = pool
        self.index = index
        self.generation = generation
    }
}
