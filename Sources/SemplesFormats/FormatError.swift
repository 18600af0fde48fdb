import Foundation

/// An error reading or writing a file: names the file, where in it, and what was wrong.
public struct FormatError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let detail: String

    public init(_ path: String, _ detail: String) {
        self.path = path
        self.detail = detail
    }

    public var description: String { "'\(path)': \(detail)" }
}
