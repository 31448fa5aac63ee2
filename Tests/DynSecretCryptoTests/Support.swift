import DynSecretCore
import Foundation
import Testing
@testable import DynSecretCrypto

/// Fixed bytes instead of random ones, handed out in the order the sealer asks: data key, payload nonce, then
/// salt and nonce of each slot.
final class FixedRandomness: RecordRandomness, @unchecked Sendable {
    // @unchecked Sendable: used by one test at a time, never shared across tasks.
    private var dek: [UInt8]
    private var chunks: [[UInt8]]

    init(dek: [UInt8], chunks: [[UInt8]]) {
        self.dek = dek
        self.chunks = chunks
    }

    func dataKey() throws(CryptoError) -> SecretBytes { SecretBytes(consuming: &dek) }

    func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard !chunks.isEmpty, chunks[0].count == buffer.count else {
            throw CryptoError(operation: "fixed randomness: asked for \(buffer.count) bytes out of order", openSSLErrors: [])
        }
        let next = chunks.removeFirst()
        next.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }
}

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
        out.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16)!)
    }
    return out
}

func hexString(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

/// The directory of this test target's sources.
let testSourceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

/// A keyring holding the given keys.
func keyring(_ keys: [(kid: [UInt8], kek: [UInt8], state: KeyState)]) -> Keyring {
    var ring = Keyring(keys: [])
    for k in keys {
        var raw = k.kek
        ring.add(id: KeyID(bytes: k.kid), material: SecretBytes(consuming: &raw), state: k.state)
    }
    return ring
}

/// Runs `python3 args` and returns exit code and output.
func python(_ args: [String], stdin: [UInt8]? = nil) throws -> (code: Int32, stdout: [UInt8], stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3"] + args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, Array(o), String(decoding: e, as: UTF8.self))
}

let referenceScript = testSourceDirectory.appendingPathComponent("ksr1_reference.py").path

/// A temporary directory removed when released.
final class TempDirectory: Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-crypto-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
