import Foundation
import Testing
@testable import DynSecretCrypto

/// Certificates issued by `CertificateIssuer`, checked by the `openssl` command (an independent X.509 verifier).
@Suite struct CertificateIssuerTests {
    static func openssl(_ args: [String], in dir: TempDirectory) throws -> (code: Int32, out: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir.path)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self))
    }

    static let now = Int64(Date().timeIntervalSince1970)

    @Test func aServingCertificateVerifiesAgainstItsCAForItsNamesOnly() throws {
        let dir = try TempDirectory()
        let ca = try CertificateIssuer.certificateAuthority(commonName: "dynsecret-webhook-ca", notBefore: Self.now - 60, notAfter: Self.now + 86_400 * 365)
        let leaf = try CertificateIssuer.serving(commonName: "dynsecret-webhook.dynsecret-system.svc",
                                                 dnsNames: ["dynsecret-webhook.dynsecret-system.svc", "localhost"], ipAddresses: ["127.0.0.1", "::1"],
                                                 notBefore: Self.now - 60, notAfter: Self.now + 86_400 * 30, issuer: ca)
        try Data(ca.certificatePEM).write(to: URL(fileURLWithPath: dir.path + "/ca.crt"))
        try Data(leaf.certificatePEM).write(to: URL(fileURLWithPath: dir.path + "/leaf.crt"))
        try Data(leaf.privateKeyPEM).write(to: URL(fileURLWithPath: dir.path + "/leaf.key"))
        #expect(String(decoding: leaf.privateKeyPEM, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----"))
        var dumped = ""
        dump(leaf, to: &dumped)
        #expect(!"\(leaf)".contains("PRIVATE") && !dumped.contains("PRIVATE") && !String(reflecting: leaf).contains("PRIVATE"))

        let verified = try Self.openssl(["verify", "-CAfile", "ca.crt", "-purpose", "sslserver", "-x509_strict", "leaf.crt"], in: dir)
        #expect(verified.code == 0 && verified.out.contains("leaf.crt: OK"), "\(verified.out)")
        for (name, ok) in [("dynsecret-webhook.dynsecret-system.svc", true), ("localhost", true), ("other.example", false)] {
            let r = try Self.openssl(["verify", "-CAfile", "ca.crt", "-verify_hostname", name, "leaf.crt"], in: dir)
            #expect((r.code == 0) == ok, "\(name): \(r.out)")
        }
        #expect(try Self.openssl(["verify", "-CAfile", "ca.crt", "-verify_ip", "127.0.0.1", "leaf.crt"], in: dir).code == 0)
        #expect(try Self.openssl(["verify", "-CAfile", "ca.crt", "-verify_ip", "10.0.0.1", "leaf.crt"], in: dir).code != 0)

        let text = try Self.openssl(["x509", "-in", "leaf.crt", "-noout", "-text"], in: dir).out
        for part in ["Version: 3", "ecdsa-with-SHA256", "NIST CURVE: P-256", "CA:FALSE", "TLS Web Server Authentication",
                     "DNS:dynsecret-webhook.dynsecret-system.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"] {
            #expect(text.contains(part), "\(part) in \(text)")
        }
        let caText = try Self.openssl(["x509", "-in", "ca.crt", "-noout", "-text"], in: dir).out
        #expect(caText.contains("CA:TRUE, pathlen:0") && caText.contains("Certificate Sign, CRL Sign"), "\(caText)")
        // The key is the certificate's.
        let pub1 = try Self.openssl(["pkey", "-in", "leaf.key", "-pubout"], in: dir).out
        let pub2 = try Self.openssl(["x509", "-in", "leaf.crt", "-noout", "-pubkey"], in: dir).out
        #expect(pub1 == pub2 && pub1.contains("PUBLIC KEY"))

        #expect(CertificateIssuer.isIssued(leaf.certificatePEM, by: ca.certificatePEM))
        let other = try CertificateIssuer.certificateAuthority(commonName: "dynsecret-webhook-ca", notBefore: Self.now, notAfter: Self.now + 3600)
        #expect(!CertificateIssuer.isIssued(leaf.certificatePEM, by: other.certificatePEM), "same name, another key")
        #expect(!CertificateIssuer.isIssued(Array("junk".utf8), by: ca.certificatePEM))
    }

    @Test func validityIsCutToTheCAAndBadNamesAreRefused() throws {
        let ca = try CertificateIssuer.certificateAuthority(commonName: "ca", notBefore: Self.now, notAfter: Self.now + 3600)
        let leaf = try CertificateIssuer.serving(commonName: "x", dnsNames: ["x.svc"], ipAddresses: [], notBefore: Self.now, notAfter: Self.now + 86_400, issuer: ca)
        let parsed = try X509Certificate.parseChain(pem: leaf.certificatePEM)
        #expect(parsed.count == 1 && parsed[0].notAfter == Self.now + 3600 && parsed[0].notBefore == Self.now)
        #expect(parsed[0].matches(try PrivateKey(pem: leaf.privateKeyPEM)))
        #expect(try PrivateKey(pem: leaf.privateKeyPEM).algorithm == "EC")

        for bad in ["a,DNS:evil.example", "-x.svc", "", "a..b", String(repeating: "a", count: 64) + ".svc"] {
            #expect(throws: CryptoError.self, "\(bad)") {
                try CertificateIssuer.serving(commonName: "x", dnsNames: [bad], ipAddresses: [], notBefore: Self.now, notAfter: Self.now + 60, issuer: ca)
            }
        }
        #expect(throws: CryptoError.self) {
            try CertificateIssuer.serving(commonName: "x", dnsNames: [], ipAddresses: ["300.1.1.1"], notBefore: Self.now, notAfter: Self.now + 60, issuer: ca)
        }
        #expect(throws: CryptoError.self) { try CertificateIssuer.certificateAuthority(commonName: "ca", notBefore: Self.now, notAfter: Self.now) }
        #expect(CertificateIssuer.isDNSName("*.dynsecret-system.svc") && !CertificateIssuer.isDNSName("a.*.svc"))
    }
}
