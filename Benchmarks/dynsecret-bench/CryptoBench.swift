// `dynsecret-bench crypto [--seconds S] [--rounds N]`: KSR1 seal/open throughput against
// `openssl speed -elapsed -evp aes-256-gcm` in the same run (alternating rounds, best of each side, wall-clock time
// on both sides), and records per second written to an at-rest store with and without fsync.

import DynSecretCore
import DynSecretCrypto
import Foundation

/// Bytes per second of `openssl speed -elapsed -evp aes-256-gcm -bytes size` (single thread, wall-clock time).
private func opensslSpeed(bytes size: Int, seconds: Int) -> Double? {
    guard let openssl = resolve("openssl") else { return nil }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: openssl)
    // -elapsed: divide by wall-clock time, as this benchmark does for dynsecret (openssl's default is CPU user
    // time, which would hide any load from other processes on its side only).
    p.arguments = ["speed", "-elapsed", "-evp", "aes-256-gcm", "-bytes", String(size), "-seconds", String(seconds), "-mr"]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return nil }
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    // +F:<n>:AES-256-GCM:<bytes per second>
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("+F:") }) else { return nil }
    return Double(line.split(separator: ":").last ?? "")
}

/// Runs `body` repeatedly for at least `seconds` and returns the operations per second.
private func rate(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<3 { try body() }
    var n = 0
    let start = DispatchTime.now().uptimeNanoseconds
    var elapsed = 0.0
    repeat {
        for _ in 0..<8 { try body() }
        n += 8
        elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    } while elapsed < seconds
    return Double(n) / elapsed
}

private func peakRSSKiB() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
    return line.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
}

private func gbps(_ bytesPerSecond: Double) -> String { String(format: "%.2f GB/s", bytesPerSecond / 1e9) }

func benchCrypto(_ args: ArraySlice<String>) throws {
    var seconds = 2
    var rounds = 3
    var it = args.makeIterator()
    while let a = it.next() {
        if a == "--seconds", let v = it.next().flatMap({ Int($0) }) {
            seconds = v
        } else if a == "--rounds", let v = it.next().flatMap({ Int($0) }), v > 0 {
            rounds = v
        } else {
            FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
            exit(2)
        }
    }
    let ring = try Keyring.generate(now: "bench")
    let keys = RecordKeys(keyring: ring)
    print("benchmark: crypto (single thread, best of \(rounds) alternating rounds of \(seconds) s; \(OpenSSLLibrary.version))")
    print("  size      KSR1 seal      KSR1 open      openssl speed  seal/openssl  open/openssl")
    for size in [1 << 20, 2048] {
        // The value fills the record's padded plaintext (6 bytes of framing for type "", key "v").
        var value = [UInt8](repeating: 0, count: size)
        for i in value.indices { value[i] = UInt8(truncatingIfNeeded: i) }
        let payload = RecordPayload(type: "Opaque", data: ["v": value])
        let context = RecordContext(storeID: "bench", namespace: "ns", name: "n", uid: "u", generation: 1)
        let sealed = try AtRestRecord.seal(payload, context: context, keyring: ring, created: 1)
        // Rounds alternate between the two sides; the best round of each counts, so load from other processes on
        // the machine penalizes neither side more than the other.
        var sealRate = 0.0
        var openRate = 0.0
        var peer: Double?
        for _ in 0..<rounds {
            sealRate = max(sealRate, try rate(seconds: Double(seconds)) { _ = try AtRestRecord.seal(payload, context: context, keyring: ring, created: 1) })
            openRate = max(openRate, try rate(seconds: Double(seconds)) { _ = try AtRestRecord.open(sealed, keys: keys) })
            if let p = opensslSpeed(bytes: size, seconds: seconds) { peer = max(peer ?? 0, p) }
        }
        let s = sealRate * Double(size)
        let o = openRate * Double(size)
        let label = size >= 1 << 20 ? "1 MiB" : "2 KiB"
        let peerText = peer.map(gbps) ?? "n/a"
        let r1 = peer.map { String(format: "%.2f", s / $0) } ?? "n/a"
        let r2 = peer.map { String(format: "%.2f", o / $0) } ?? "n/a"
        print("  \(label.padding(toLength: 8, withPad: " ", startingAt: 0))  \(gbps(s).padding(toLength: 13, withPad: " ", startingAt: 0))  \(gbps(o).padding(toLength: 13, withPad: " ", startingAt: 0))  \(peerText.padding(toLength: 13, withPad: " ", startingAt: 0))  \(r1.padding(toLength: 12, withPad: " ", startingAt: 0))  \(r2)")
        print(String(format: "            (%.0f seals/s, %.0f opens/s)", sealRate, openRate))
    }
    print("  goal: seal and open >= 0.8x openssl at 1 MiB")

    // Store writes: 2 KiB Secrets, one record file each.
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-bench-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let secret = Secret(metadata: ObjectMeta(name: "s", namespace: "ns"), data: ["v": [UInt8](repeating: 7, count: 2048)])
    for durable in [true, false] {
        let store = try AtRestStore.open("\(dir)/\(durable)", create: true, durable: durable)
        var generation: UInt64 = 0
        let perSecond = try rate(seconds: Double(seconds)) {
            generation += 1
            try store.write(secret, generation: generation, keyring: ring, created: 1)
        }
        print(String(format: "  store write, 2 KiB Secret, %@: %.0f records/s", durable ? "fsync file + directory" : "no fsync", perSecond))
    }
    if let rss = peakRSSKiB() { print("  peak RSS \(rss) KiB") }
}
