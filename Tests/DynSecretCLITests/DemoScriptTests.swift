import Foundation
import Testing

/// `scripts/demo.sh`, the README's "see the controller work" step, run as a user runs it (with the test build's
/// binaries): replicas appear, follow a source change and are pruned, in well under a minute, printing no secret.
@Suite struct DemoScriptTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(.enabled(if: kubectlPath != nil && dynsecretBinary != nil, "needs kubectl and the dynsecret binary"))
    func demoRunsAndStopsEverything() throws {
        let bin = try #require(dynsecretBinary)
        let emulator = URL(fileURLWithPath: bin).deletingLastPathComponent().appendingPathComponent("kube-emulator").path
        let script = Self.root.appendingPathComponent("scripts/demo.sh").path
        let start = ContinuousClock.now
        let r = try runProcess("/usr/bin/env", ["DYNSECRET=\(bin)", "KUBE_EMULATOR=\(emulator)", "bash", script], timeout: .seconds(60))
        let took = ContinuousClock.now - start
        #expect(r.code == 0, "exit \(r.code): \(r.stdout)\n\(r.stderr)")
        #expect(took < .seconds(45), "the demo took \(took)")
        let steps = r.stdout.components(separatedBy: "== ")
        func replicaLines(_ step: String) -> [String] { step.split(separator: "\n").filter { $0.contains("registry-creds") && $0.contains("sha256:") }.map(String.init) }
        let after = { (title: String) in steps.first { $0.hasPrefix(title) }.map(replicaLines) ?? [] }
        #expect(after("dynsecret controller").count == 2, "\(r.stdout)")
        #expect(after("label team-c").count == 3, "\(r.stdout)")
        let changed = after("change the source")
        #expect(changed.count == 3 && Set(changed.map { $0.split(separator: " ").last! }).count == 1, "\(r.stdout)")
        #expect(changed.first?.split(separator: " ").last != after("label team-c").first?.split(separator: " ").last, "the content hash did not change")
        #expect(after("unlabel team-b").map { String($0.prefix(6)) } == ["team-a", "team-c"], "\(r.stdout)")
        #expect(r.stdout.contains("dynsecret_writes_total{kind=\"delete\"} 1"), "\(r.stdout)")
        #expect(r.stdout.contains("imagePullSecrets: registry-creds"))
        #expect(!r.stdout.contains("demo-password") && !r.stderr.contains("demo-password"), "a secret value was printed")
        // Everything it started has stopped.
        let left = try runProcess("/usr/bin/pgrep", ["-f", emulator])
        #expect(left.stdout.isEmpty, "kube-emulator still running: \(left.stdout)")
    }
}
