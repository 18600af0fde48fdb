import Foundation
import SemplesEngine
import SemplesFormats

/// Training batches decoded and augmented on a background thread while the engine computes.
///
/// Repeatable from the seed alone, whatever the timing: epoch e visits the images in the order of
/// a Fisher–Yates shuffle seeded by (seed, e), drops the last partial batch (drop_last), and the
/// augmentation of the sample at position q of epoch e draws from a generator seeded by
/// (seed, e, q). So a run resumed at (epoch, batch) sees exactly the batches it would have seen.
public final class TrainingBatchLoader: @unchecked Sendable {
    public let imagePaths: [String]
    public let labels: [[Float]]
    public let batchSize: Int
    public let transform: TrainingAugmentation
    public let seed: UInt64
    public var batchesPerEpoch: Int { imagePaths.count / batchSize }

    private let classCount: Int
    private let slots: [(images: Tensor, targets: Tensor)]
    private let condition = NSCondition()
    private var filled: [Int] = []          // slot indices ready, in batch order
    private var free: [Int]
    private var producedError: Error?
    private var thread: Thread?
    private var cancelled = false
    private var generation = 0
    private var producerActive = false

    public init(imagePaths: [String], labels: [[Float]], batchSize: Int, transform: TrainingAugmentation,
                seed: UInt64, prefetch: Int = 2) {
        precondition(imagePaths.count == labels.count && batchSize > 0 && prefetch > 0, "loader setup")
        self.imagePaths = imagePaths
        self.labels = labels
        self.batchSize = batchSize
        self.transform = transform
        self.seed = seed
        let C = labels.first?.count ?? 0
        classCount = C
        let S = transform.size
        slots = (0..<prefetch).map { _ in (Tensor([batchSize, 3, S, S]), Tensor([batchSize, max(C, 1)])) }
        free = Array(0..<prefetch)
    }

    deinit { stop() }

    /// The image order of an epoch (indices into imagePaths).
    public func order(epoch: Int) -> [Int] {
        var g = SeededGenerator(seed: Self.mix(seed, UInt64(epoch), 0x5EED))
        var idx = Array(0..<imagePaths.count)
        if idx.count > 1 {
            for i in stride(from: idx.count - 1, to: 0, by: -1) {
                let j = Int(g.next() % UInt64(i + 1))
                idx.swapAt(i, j)
            }
        }
        return idx
    }

    /// The generator the augmentation of position q of epoch e draws from.
    public func sampleGenerator(epoch: Int, position: Int) -> SeededGenerator {
        SeededGenerator(seed: Self.mix(seed, UInt64(epoch), UInt64(position)))
    }

    static func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for v in [a, b, c] {
            h ^= v
            h = h &* 0x0000_0100_0000_01B3
            h ^= h >> 29
        }
        return h
    }

    /// Fills one batch synchronously (batch k of epoch e).
    public func makeBatch(epoch: Int, batch k: Int, images: TensorView, targets: TensorView) throws {
        let ord = order(epoch: epoch)
        try fill(order: ord, epoch: epoch, batch: k, images: images, targets: targets)
    }

    private func fill(order ord: [Int], epoch: Int, batch k: Int, images: TensorView, targets: TensorView) throws {
        let S = transform.size, C = classCount
        for i in 0..<batchSize {
            let q = k * batchSize + i
            let n = ord[q]
            let image = try ImageIO.read(imagePaths[n])
            var g = sampleGenerator(epoch: epoch, position: q)
            transform.apply(image, rng: &g, into: images.slice(offset: i * 3 * S * S, Shape(3, S, S)))
            for c in 0..<C { targets.data[i * C + c] = labels[n][c] > 0 ? 1 : 0 }
        }
    }

    /// Starts producing batches fromBatch..<batchesPerEpoch of `epoch` in the background.
    public func start(epoch: Int, fromBatch: Int) {
        stop()
        condition.lock()
        cancelled = false
        filled = []
        free = Array(0..<slots.count)
        producedError = nil
        generation += 1
        let myGeneration = generation
        producerActive = true
        condition.unlock()
        let ord = order(epoch: epoch)
        let t = Thread { [weak self] in
            guard let self else { return }
            defer {
                self.condition.lock()
                self.producerActive = false
                self.condition.broadcast()
                self.condition.unlock()
            }
            for k in fromBatch..<self.batchesPerEpoch {
                self.condition.lock()
                while self.free.isEmpty && !self.cancelled { self.condition.wait() }
                if self.cancelled || self.generation != myGeneration { self.condition.unlock(); return }
                let slot = self.free.removeFirst()
                self.condition.unlock()
                do {
                    try self.fill(order: ord, epoch: epoch, batch: k, images: self.slots[slot].images.view,
                                  targets: self.slots[slot].targets.view)
                } catch {
                    self.condition.lock()
                    self.producedError = error
                    self.condition.broadcast()
                    self.condition.unlock()
                    return
                }
                self.condition.lock()
                self.filled.append(slot)
                self.condition.broadcast()
                self.condition.unlock()
            }
        }
        t.stackSize = 1 << 22
        thread = t
        t.start()
    }

    /// Copies the next batch into images [B, 3, S, S] and targets [B, C]; throws a decode error.
    public func next(images: TensorView, targets: TensorView) throws {
        condition.lock()
        while filled.isEmpty && producedError == nil { condition.wait() }
        if filled.isEmpty, let e = producedError { condition.unlock(); throw e }
        let slot = filled.removeFirst()
        condition.unlock()
        images.copy(from: slots[slot].images.view)
        targets.copy(from: slots[slot].targets.view.reshaped(targets.shape.dims))
        condition.lock()
        free.append(slot)
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the producer and waits for the batch in progress to finish.
    public func stop() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while producerActive { condition.wait() }
        condition.unlock()
        thread = nil
    }
}
