import DynSecretCore
import Foundation
import Testing

/// `verify` cases that need no registry: glob keys, empty credentials, a username that is the password, nothing
/// listening.
@Suite struct VerifyClientTests {
    static let token = "dop_v1_0123456789abcdef-canary"

    @Test func globKeysAndTokenUsernamesAreReportedWithoutLeaking() async throws {
        let dir = try TempDir()
        // A registry token used as both username and password (as some registries issue them), on a port where
        // nothing listens, and a glob key.
        let secret = pullSecretManifest("regcred", registries: ["127.0.0.1:1", "*.example.com"], user: Self.token, password: Self.token)
        let file = try dir.file("secret.yaml", secret)
        for format in ["text", "json"] {
            let r = await dynsecret(["verify", "-f", file, "-o", format, "--registry-timeout", "5"])
            #expect(r.code == 1, "\(r.stderr)")
            #expect(!r.stdout.contains(Self.token) && !r.stderr.contains(Self.token), "the token leaked (\(format))")
            #expect(r.stdout.contains("redacted"))
            #expect(r.stdout.contains("glob key"))
            #expect(r.stdout.contains("unreachable"))
        }
    }
}
