public import DynSecretCore

extension MintedCredentialSource {
    /// Mints the credential once: runs the provider (an exec plugin as the kubelet runs it: the request on stdin,
    /// the response on stdout, bounded in time and size) and reads its answer. Errors name the credential and the
    /// plugin's exit status or the protocol problem, with at most one redacted line of its stderr; never a value.
    public func mint() async throws(KubeError) -> MintedCredential {
        switch provider {
        case .exec(let e):
            let what = "credential \(name): plugin \(e.command)"
            let request = KubeletCredentialProvider.request(image: e.image, apiVersion: e.apiVersion)
            let (code, out, errLine) = try await ExecLimits.run(e.command, e.args, env: e.env.map { ($0.name, $0.value) }, stdin: request,
                                                                 timeout: e.timeout, what: what).get()
            guard code == 0 else { throw KubeError(message: "\(what) exited with status \(code)" + (errLine.isEmpty ? "" : ": \(errLine)")) }
            do {
                return try KubeletCredentialProvider.response(out, apiVersion: e.apiVersion, defaultCacheDuration: e.defaultCacheDuration)
            } catch {
                throw KubeError(message: "\(what): the response is discarded: \(error.description)")
            }
        }
    }
}
