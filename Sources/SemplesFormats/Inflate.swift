import Foundation

/// A raw DEFLATE (RFC 1951) decoder for the small compressed entries of TorchScript archives.
/// Output is bounded by the size the archive declares, so a hostile entry cannot expand without
/// limit; every bit read, code and back-reference is checked.
enum Inflate {
    static func inflate(_ input: UnsafeRawBufferPointer, expectedSize: Int, path: String, what: String) throws -> Data {
        var d = Decoder(input: input, limit: expectedSize, path: path, what: what)
        try d.run()
        guard d.out.count == expectedSize else {
            throw FormatError(path, "\(what) inflates to \(d.out.count) bytes, expected \(expectedSize)")
        }
        return Data(d.out)
    }

    /// Canonical Huffman code: counts per length and symbols in code order.
    struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int] = []

        init(lengths: [Int], path: String, what: String) throws {
            for l in lengths { counts[l] += 1 }
            counts[0] = 0
            var left = 1
            for len in 1..<16 {
                left <<= 1
                left -= counts[len]
                guard left >= 0 else { throw FormatError(path, "\(what): over-subscribed Huffman code") }
            }
            var offsets = [Int](repeating: 0, count: 16)
            for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (symbol, l) in lengths.enumerated() where l != 0 {
                symbols[offsets[l]] = symbol
                offsets[l] += 1
            }
        }
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    struct Decoder {
        let input: UnsafeRawBufferPointer
        let limit: Int
        let path: String
        let what: String
        var out: [UInt8] = []
        var position = 0
        var bitBuffer = 0
        var bitCount = 0

        init(input: UnsafeRawBufferPointer, limit: Int, path: String, what: String) {
            self.input = input
            self.limit = limit
            self.path = path
            self.what = what
            out.reserveCapacity(limit)
        }

        func fail(_ s: String) -> FormatError { FormatError(path, "\(what): \(s) (corrupted deflate data)") }

        mutating func bits(_ n: Int) throws -> Int {
            while bitCount < n {
                guard position < input.count else { throw fail("input ends early") }
                bitBuffer |= Int(input[position]) << bitCount
                position += 1
                bitCount += 8
            }
            let v = bitBuffer & ((1 << n) - 1)
            bitBuffer >>= n
            bitCount -= n
            return v
        }

        mutating func decode(_ h: Huffman) throws -> Int {
            var code = 0, first = 0, index = 0
            for len in 1..<16 {
                code |= try bits(1)
                let count = h.counts[len]
                if code - count < first { return h.symbols[index + (code - first)] }
                index += count
                first += count
                first <<= 1
                code <<= 1
            }
            throw fail("invalid Huffman code")
        }

        mutating func run() throws {
            var last = 0
            repeat {
                last = try bits(1)
                switch try bits(2) {
                case 0: try stored()
                case 1:
                    let lit = try Huffman(lengths: (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 }, path: path, what: what)
                    let dist = try Huffman(lengths: [Int](repeating: 5, count: 30), path: path, what: what)
                    try codes(lit, dist)
                case 2: try dynamic()
                default: throw fail("reserved block type")
                }
            } while last == 0
        }

        mutating func stored() throws {
            bitBuffer = 0
            bitCount = 0
            guard position + 4 <= input.count else { throw fail("input ends early") }
            let len = Int(input[position]) | Int(input[position + 1]) << 8
            let nlen = Int(input[position + 2]) | Int(input[position + 3]) << 8
            position += 4
            guard len == (~nlen & 0xFFFF) else { throw fail("stored block length check fails") }
            guard position + len <= input.count else { throw fail("input ends early") }
            guard out.count + len <= limit else { throw fail("output exceeds the declared size") }
            out.append(contentsOf: input[position..<(position + len)])
            position += len
        }

        mutating func dynamic() throws {
            let nlen = try bits(5) + 257, ndist = try bits(5) + 1, ncode = try bits(4) + 4
            guard nlen <= 286, ndist <= 30 else { throw fail("bad code counts") }
            var lengths = [Int](repeating: 0, count: 19)
            for i in 0..<ncode { lengths[Inflate.codeLengthOrder[i]] = try bits(3) }
            let lencode = try Huffman(lengths: lengths, path: path, what: what)
            var all: [Int] = []
            while all.count < nlen + ndist {
                let symbol = try decode(lencode)
                if symbol < 16 {
                    all.append(symbol)
                } else {
                    var value = 0, repeatCount = 0
                    switch symbol {
                    case 16:
                        guard let previous = all.last else { throw fail("repeat with no previous length") }
                        value = previous
                        repeatCount = 3 + (try bits(2))
                    case 17: repeatCount = 3 + (try bits(3))
                    default: repeatCount = 11 + (try bits(7))
                    }
                    guard all.count + repeatCount <= nlen + ndist else { throw fail("too many lengths") }
                    all += [Int](repeating: value, count: repeatCount)
                }
            }
            guard all[256] != 0 else { throw fail("no end-of-block code") }
            let lit = try Huffman(lengths: Array(all[0..<nlen]), path: path, what: what)
            let dist = try Huffman(lengths: Array(all[nlen...]), path: path, what: what)
            try codes(lit, dist)
        }

        mutating func codes(_ lit: Huffman, _ dist: Huffman) throws {
            while true {
                var symbol = try decode(lit)
                if symbol < 256 {
                    guard out.count < limit else { throw fail("output exceeds the declared size") }
                    out.append(UInt8(symbol))
                } else if symbol == 256 {
                    return
                } else {
                    symbol -= 257
                    guard symbol < 29 else { throw fail("bad length symbol") }
                    let length = Inflate.lengthBase[symbol] + (try bits(Inflate.lengthExtra[symbol]))
                    let ds = try decode(dist)
                    guard ds < 30 else { throw fail("bad distance symbol") }
                    let distance = Inflate.distanceBase[ds] + (try bits(Inflate.distanceExtra[ds]))
                    guard distance <= out.count else { throw fail("distance reaches before the start") }
                    guard out.count + length <= limit else { throw fail("output exceeds the declared size") }
                    let start = out.count - distance
                    for i in 0..<length { out.append(out[start + i]) }
                }
            }
        }
    }
}
