import DynSecretCrypto
import DynSecretKube
import Foundation
import Testing
@testable import DynSecretAdmission

/// When `--self-signed-ca` renews what, decided on Secret data at chosen times (no cluster): the serving certificate
/// with a third of its lifetime left, the CA likewise (joining the bundle ahead of the old one, which stays until it
/// expires), and a certificate for other names at once.
@Suite struct SelfSignedRenewalTests {
    final class Clock: @unchecked Sendable { var now: Int64 = 1_800_000_000 }

    static func manager(_ clock: Clock, names: [String] = ["dynsecret-webhook.dynsecret-system.svc"]) throws -> SelfSignedCertificates {
        var s = SelfSignedSettings(namespace: "dynsecret-system")
        s.dnsNames = names
        s.caValidity = .seconds(9_000)
        s.certificateValidity = .seconds(3_000)
        return SelfSignedCertificates(client: KubeClient(config: KubeConfig(server: "http://127.0.0.1:9")), settings: s, now: { clock.now })
    }

    static func count(_ bundle: [UInt8]?) -> Int { SelfSignedCertificates.certificates(bundle ?? []).count }

    @Test func renewsWithAThirdLeftAndKeepsTheOldCAUntilItExpires() throws {
        let clock = Clock()
        let m = try Self.manager(clock)
        let (first, created) = try m.issue([:], namesMatch: false)
        let data = try #require(created)
        #expect(Set(data.keys) == ["tls.crt", "tls.key", "ca.crt", "ca.key", "ca-bundle.crt"] && Self.count(data["ca-bundle.crt"]) == 1)
        #expect(first.certificate == data["tls.crt"] && first.bundle == data["ca.crt"])
        #expect(CertificateIssuer.isIssued(data["tls.crt"]!, by: data["ca.crt"]!))

        // Early in its life: nothing to write.
        clock.now += 1_000
        #expect(try m.issue(data, namesMatch: true).1 == nil)
        // Other names: a new serving certificate from the same CA.
        let renamed = try #require(try m.issue(data, namesMatch: false).1)
        #expect(renamed["tls.crt"] != data["tls.crt"] && renamed["ca.crt"] == data["ca.crt"] && renamed["ca-bundle.crt"] == data["ca-bundle.crt"])

        // A third of the serving certificate's life left (backdated 300 s: lifetime 3,300 s): renewed, same CA.
        clock.now = 1_800_000_000 + 2_000
        let leaf = try #require(try m.issue(data, namesMatch: true).1)
        #expect(leaf["tls.crt"] != data["tls.crt"] && leaf["ca.key"] == data["ca.key"] && leaf["ca-bundle.crt"] == data["ca-bundle.crt"])

        // A third of the CA's life left: a new CA first in the bundle, the old one after it, a certificate from the new.
        clock.now = 1_800_000_000 + 6_200
        let turned = try #require(try m.issue(leaf, namesMatch: true).1)
        #expect(turned["ca.crt"] != data["ca.crt"] && Self.count(turned["ca-bundle.crt"]) == 2)
        #expect(SelfSignedCertificates.certificates(turned["ca-bundle.crt"]!) == [turned["ca.crt"]!, data["ca.crt"]!])
        #expect(CertificateIssuer.isIssued(turned["tls.crt"]!, by: turned["ca.crt"]!))
        #expect(try m.issue(turned, namesMatch: true).1 == nil)

        // The old CA expired: dropped from the bundle, nothing else changes.
        clock.now = 1_800_000_000 + 9_001
        let trimmed = try #require(try m.issue(turned, namesMatch: true).1)
        #expect(SelfSignedCertificates.certificates(trimmed["ca-bundle.crt"]!) == [turned["ca.crt"]!])
        #expect(trimmed["ca.key"] == turned["ca.key"])
    }

    @Test func unreadableOrMismatchedMaterialIsReissued() throws {
        let clock = Clock()
        let m = try Self.manager(clock)
        let data = try #require(try m.issue([:], namesMatch: false).1)
        var broken = data
        broken["tls.key"] = try #require(try m.issue([:], namesMatch: false).1)["tls.key"]  // another key
        let fixed = try #require(try m.issue(broken, namesMatch: true).1)
        #expect(fixed["tls.crt"] != data["tls.crt"] && fixed["ca.crt"] == data["ca.crt"])
        #expect(try PrivateKey(pem: fixed["tls.key"]!).algorithm == "EC")
        var noCA = data
        noCA["ca.key"] = Array("junk".utf8)
        let again = try #require(try m.issue(noCA, namesMatch: true).1)
        #expect(again["ca.crt"] != data["ca.crt"] && CertificateIssuer.isIssued(again["tls.crt"]!, by: again["ca.crt"]!))
        #expect("\(try m.issue(data, namesMatch: true).0)".contains("key redacted"))
    }
}
