internal import CDynSecretCurl

/// The libcurl library dynsecret talks HTTP through.
public enum CurlLibrary {
    /// libcurl's version and the TLS backend it was built with, such as `libcurl 7.88.1 (OpenSSL/3.0.19)`.
    public static var version: String {
        guard let info = cdynsecret_curl_version_info() else { return "libcurl unknown" }
        let v = info.pointee.version.map { String(cString: $0) } ?? "unknown"
        let ssl = info.pointee.ssl_version.map { String(cString: $0) }
        return "libcurl \(v)" + (ssl.map { " (\($0))" } ?? "")
    }
}
