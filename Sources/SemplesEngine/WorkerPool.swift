#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Persistent worker threads for `Parallel`: a run hands out indices 0..<n, the caller taking 0.
///
/// Compared with DispatchQueue.concurrentPerform (about four allocations per call on Linux), a run
/// here costs one small closure-context allocation and two futex wake-ups. A run started while another
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
    /// The running body while a run is active.
    private var job: (Int) -> Void = WorkerPool.idle
    private static let idle: (Int) -> Void = { _ in }

    private init() {
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        finished = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
    }

    /// Runs body(i) for i in 0..<width, concurrently on up to width threads (the caller is one).
    ///
    /// Handing the body to the workers costs one small runtime allocation (the closure context
    /// stored in `job`); tensors and scratch never allocate here.
    func run(width: Int, _ body: (Int) -> Void) {
        if width <= 1 {
            if width == 1 { body(0) }
            return
        }
        pthread_mutex_lock(mutex)
        if busy {
            pthread_mutex_unlock(mutex)
            for i in 0..<width { body(i) }
            return
        }
        busy = true
        while threadCount < width - 1 { startThread(index: threadCount + 1) }
        pthread_mutex_unlock(mutex)

        withoutActuallyEscaping(body) { body in
            pthread_mutex_lock(mutex)
            job = body
            jobWidth = width
            pending = threadCount
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)

            body(0)

            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(finished, mutex) }
            job = WorkerPool.idle
            busy = false
            pthread_mutex_unlock(mutex)
        }
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
            if index < width {
                let body = job
                pthread_mutex_unlock(mutex)
                body(index)
                pthread_mutex_lock(mutex)
            }
            pending -= 1
            if pending == 0 { pthread_cond_signal(finished) }
        }
    }
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
