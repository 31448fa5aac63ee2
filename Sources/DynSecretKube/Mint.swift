public import DynSecretCore
internal import Foundation

/// The transport of the cloud calls (ECR, STS, Google), shared by every mint of the process.
enum CloudTransport {
    static let shared = CurlTransport(settings: TransportSettings(), maxConcurrentRequests: 4)
}

extension MintedCredentialSource {
    /// Mints the credential once: runs the provider (an exec plugin as the kubelet runs it: the request on stdin,
    /// the response on stdout, bounded in time and size) and reads its answer. Errors name the credential and the
    /// plugin's exit status or the protocol problem, with at most one redacted line of its stderr; never a value.
    /// `environment` is where cloud providers find their credentials (the process environment by default).
    public func mint(environment: [String: String]? = nil) async throws(KubeError) -> MintedCredential {
        let env = AWS.Environment(environment)
        switch provider {
        case .ecr(let e):
            do throws(KubeError) {
                let (m, source) = try await AWS.ecrAuthorizationToken(region: e.region, registryIDs: e.registryIDs, env, transport: CloudTransport.shared)
                return MintedCredential(auths: m.auths, lifetime: m.lifetime, origin: source)
            } catch {
                throw KubeError(message: "credential \(name): \(error.message)", httpStatus: error.httpStatus)
            }
        case .google(let g):
            do throws(KubeError) {
                let t = try await GoogleAuth.accessToken(env, transport: CloudTransport.shared)
                let credential = RegistryCredential(username: MintedCredentialSource.googleUsername, password: t.accessToken)
                return MintedCredential(auths: Dictionary(uniqueKeysWithValues: g.registries.map { ($0, credential) }), lifetime: t.lifetime, origin: t.source)
            } catch {
                throw KubeError(message: "credential \(name): \(error.message)", httpStatus: error.httpStatus)
            }
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
