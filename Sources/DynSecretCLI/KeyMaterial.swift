internal import DynSecretCore
internal import DynSecretCrypto

/// Certificate and key checks for validation, done by OpenSSL through DynSecretCrypto.
struct OpenSSLInspector: KeyMaterialInspector {
    func certificates(pem: [UInt8]) throws(KeyMaterialError) -> [CertificateInfo] {
        do {
            return try X509Certificate.parseChain(pem: pem).map {
                CertificateInfo(subject: $0.subject, notBefore: $0.notBefore, notAfter: $0.notAfter)
            }
        } catch {
            throw KeyMaterialError(error.openSSLErrors.joined(separator: "; "))
        }
    }

    func privateKey(pem: [UInt8]) throws(KeyMaterialError) -> String {
        do {
            return try PrivateKey(pem: pem).algorithm
        } catch {
            throw KeyMaterialError(error.openSSLErrors.joined(separator: "; "))
        }
    }

    func keyMatchesCertificate(certificatePEM: [UInt8], keyPEM: [UInt8]) -> Bool {
        guard let cert = try? X509Certificate.parseChain(pem: certificatePEM).first, let key = try? PrivateKey(pem: keyPEM) else { return false }
        return cert.matches(key)
    }

    func sshPrivateKey(_ bytes: [UInt8]) throws(KeyMaterialError) -> String {
        do {
            return try SSHPrivateKey.inspect(bytes)
        } catch {
            throw KeyMaterialError(error.openSSLErrors.joined(separator: "; "))
        }
    }
}
