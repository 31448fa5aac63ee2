internal import CDynSecretOpenSSL
#if canImport(Glibc)
internal import Glibc
#endif

/// A certificate and its private key, both PEM (the key as unencrypted PKCS#8).
public struct IssuedCertificate: Sendable, CustomStringConvertible, CustomReflectable {
    public var certificatePEM: [UInt8]
    public var privateKeyPEM: [UInt8]

    public init(certificatePEM: [UInt8], privateKeyPEM: [UInt8]) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// Never the key.
    public var description: String { "IssuedCertificate(\(certificatePEM.count) bytes of certificate, key redacted)" }
    public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}

/// Issues X.509 v3 certificates with ECDSA P-256 keys and SHA-256 signatures on the system OpenSSL: a self-signed CA,
/// and TLS serving certificates signed by it (what `dynsecret webhook --self-signed-ca` keeps in its Secret).
public enum CertificateIssuer {
    /// A self-signed CA certificate (basicConstraints CA:TRUE, pathlen 0; keyUsage keyCertSign, cRLSign, digitalSignature) valid from
    /// `notBefore` to `notAfter` (seconds since the Unix epoch).
    public static func certificateAuthority(commonName: String, notBefore: Int64, notAfter: Int64) throws(CryptoError) -> IssuedCertificate {
        let key = try generateKey()
        defer { EVP_PKEY_free(key) }
        let cert = try build(commonName: commonName, key: key, notBefore: notBefore, notAfter: notAfter, issuer: nil, issuerKey: key, extensions: [
            (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
            (NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"),
            (NID_subject_key_identifier, "hash"),
        ])
        defer { X509_free(cert) }
        return IssuedCertificate(certificatePEM: try pem { PEM_write_bio_X509($0, cert) }, privateKeyPEM: try pem { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) })
    }

    /// A TLS server certificate (extendedKeyUsage serverAuth) for `dnsNames` and `ipAddresses`, signed by the CA
    /// `issuer` (certificate and key PEM). Its validity is cut to the CA's.
    public static func serving(commonName: String, dnsNames: [String], ipAddresses: [String], notBefore: Int64, notAfter: Int64,
                               issuer: IssuedCertificate) throws(CryptoError) -> IssuedCertificate {
        guard !dnsNames.isEmpty || !ipAddresses.isEmpty else { throw CryptoError(operation: "certificate issuing", openSSLErrors: ["no DNS name or IP address"]) }
        for name in dnsNames where !isDNSName(name) {
            throw CryptoError(operation: "certificate issuing", openSSLErrors: ["\(name) is not a DNS name"])
        }
        for ip in ipAddresses where !isIPAddress(ip) {
            throw CryptoError(operation: "certificate issuing", openSSLErrors: ["\(ip) is not an IP address"])
        }
        let caCert = try readCertificate(issuer.certificatePEM)
        defer { X509_free(caCert) }
        let caKey = try readKey(issuer.privateKeyPEM)
        defer { EVP_PKEY_free(caKey) }
        let key = try generateKey()
        defer { EVP_PKEY_free(key) }
        let caNotAfter = X509Certificate.epochSeconds(X509_get0_notAfter(caCert))
        let san = (dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }).joined(separator: ",")
        let cert = try build(commonName: commonName, key: key, notBefore: notBefore, notAfter: min(notAfter, caNotAfter), issuer: caCert, issuerKey: caKey, extensions: [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, "serverAuth"),
            (NID_subject_alt_name, san),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ])
        defer { X509_free(cert) }
        return IssuedCertificate(certificatePEM: try pem { PEM_write_bio_X509($0, cert) }, privateKeyPEM: try pem { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) })
    }

    /// Whether `certificatePEM`'s first certificate was signed by the first certificate of `issuerPEM` (signature
    /// and names checked; validity periods are not).
    public static func isIssued(_ certificatePEM: [UInt8], by issuerPEM: [UInt8]) -> Bool {
        guard let cert = try? readCertificate(certificatePEM) else { return false }
        defer { X509_free(cert) }
        guard let ca = try? readCertificate(issuerPEM) else { return false }
        defer { X509_free(ca) }
        let named = X509_check_issued(ca, cert) == X509_V_OK
        guard named, let caKey = X509_get0_pubkey(ca) else { ERR_clear_error(); return false }
        let signed = X509_verify(cert, caKey) == 1
        ERR_clear_error()
        return signed
    }

    /// RFC 1123 host names, optionally with a leading `*.` label.
    public static func isDNSName(_ name: String) -> Bool {
        var labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" { labels.removeFirst() }
        guard !labels.isEmpty, name.utf8.count <= 253 else { return false }
        return labels.allSatisfy { label in
            guard let first = label.utf8.first, let last = label.utf8.last, label.utf8.count <= 63 else { return false }
            func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) }
            return alnum(first) && alnum(last) && label.utf8.allSatisfy { alnum($0) || $0 == 0x2D }
        }
    }

    /// IPv4 or IPv6 address literals.
    public static func isIPAddress(_ text: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return text.withCString { s in inet_pton(AF_INET, s, &buffer) == 1 || inet_pton(AF_INET6, s, &buffer) == 1 }
    }

    private static func generateKey() throws(CryptoError) -> OpaquePointer {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw CryptoError.drain("EC key generation") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_group_name(ctx, "P-256") == 1, EVP_PKEY_generate(ctx, &key) == 1, let key else {
            throw CryptoError.drain("EC key generation")
        }
        return key
    }

    private static func build(commonName: String, key: OpaquePointer, notBefore: Int64, notAfter: Int64, issuer: OpaquePointer?, issuerKey: OpaquePointer,
                              extensions: [(Int32, String)]) throws(CryptoError) -> OpaquePointer {
        guard notAfter > notBefore else { throw CryptoError(operation: "certificate issuing", openSSLErrors: ["the validity period is empty"]) }
        guard let x = X509_new() else { throw CryptoError.drain("certificate issuing") }
        var done = false
        defer { if !done { X509_free(x) } }
        // A random positive 127-bit serial (RFC 5280 §4.1.2.2: at most 20 octets).
        guard let serial = BN_new() else { throw CryptoError.drain("certificate serial") }
        defer { BN_free(serial) }
        guard X509_set_version(x, 2) == 1, BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
              BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != nil,
              ASN1_TIME_set(X509_getm_notBefore(x), time_t(notBefore)) != nil, ASN1_TIME_set(X509_getm_notAfter(x), time_t(notAfter)) != nil,
              let subject = X509_get_subject_name(x),
              X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, commonName, -1, -1, 0) == 1,
              X509_set_issuer_name(x, issuer.map { X509_get_subject_name($0) } ?? subject) == 1,
              X509_set_pubkey(x, key) == 1 else {
            throw CryptoError.drain("certificate issuing")
        }
        var ctx = X509V3_CTX()
        X509V3_set_ctx(&ctx, issuer ?? x, x, nil, nil, 0)
        for (nid, value) in extensions {
            guard let ext = X509V3_EXT_conf_nid(nil, &ctx, nid, value) else { throw CryptoError.drain("certificate extension \(value)") }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x, ext, -1) == 1 else { throw CryptoError.drain("certificate extension \(value)") }
        }
        guard X509_sign(x, issuerKey, EVP_sha256()) > 0 else { throw CryptoError.drain("certificate signing") }
        done = true
        return x
    }

    private static func readCertificate(_ pem: [UInt8]) throws(CryptoError) -> OpaquePointer {
        let x = pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_X509(bio, nil, nil, nil)
        }
        guard let x else { ERR_clear_error(); throw CryptoError(operation: "certificate parsing", openSSLErrors: ["not a PEM certificate"]) }
        return x
    }

    private static func readKey(_ pem: [UInt8]) throws(CryptoError) -> OpaquePointer {
        let k = pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let k else { ERR_clear_error(); throw CryptoError(operation: "private key parsing", openSSLErrors: ["not a PEM private key"]) }
        return k
    }

    private static func pem(_ write: (OpaquePointer) -> Int32) throws(CryptoError) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.drain("PEM encoding") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw CryptoError.drain("PEM encoding") }
        let pending = Int(BIO_ctrl_pending(bio))
        var out = [UInt8](repeating: 0, count: pending)
        let read = out.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32(pending)) }
        guard read == pending else { throw CryptoError.drain("PEM encoding") }
        return out
    }
}
