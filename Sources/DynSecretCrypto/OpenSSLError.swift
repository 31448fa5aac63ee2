internal import CDynSecretOpenSSL

/// A failed OpenSSL call, with the text of OpenSSL's error queue.
public struct CryptoError: Error, Sendable, CustomStringConvertible {
    /// What dynsecret was doing, such as `SHA-256 digest`.
    public var operation: String
    /// OpenSSL's error strings, oldest first; empty when OpenSSL queued none.
    public var openSSLErrors: [String]

    public var description: String {
        openSSLErrors.isEmpty ? "\(operation) failed" : "\(operation) failed: \(openSSLErrors.joined(separator: "; "))"
    }

    /// Drains OpenSSL's thread-local error queue into an error for `operation`.
    static func drain(_ operation: String) -> CryptoError {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            messages.append(String(decoding: bytes, as: UTF8.self))
        }
        return CryptoError(operation: operation, openSSLErrors: messages)
    }
}

/// The OpenSSL library in use.
public enum OpenSSLLibrary {
    /// The runtime version string, such as `OpenSSL 3.0.19 …`.
    public static var version: String {
        guard let p = OpenSSL_version(numericCast(OPENSSL_VERSION)) else { return "unknown" }
        return String(cString: p)
    }
}
