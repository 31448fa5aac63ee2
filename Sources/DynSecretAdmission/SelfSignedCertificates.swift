internal import DynSecretCore
internal import DynSecretKube
internal import DynSecretCrypto
internal import Foundation

/// Settings of `--self-signed-ca`: where the CA and serving certificate are kept, the names served, lifetimes.
public struct SelfSignedSettings: Sendable {
    /// The webhook's own namespace, which holds the Secret.
    public var namespace: String
    /// The Secret (type `kubernetes.io/tls`) holding `tls.crt`, `tls.key`, `ca.crt`, `ca.key` and `ca-bundle.crt`.
    public var secretName = "dynsecret-webhook-ca"
    /// The `ValidatingWebhookConfiguration` whose webhooks get `clientConfig.caBundle`.
    public var webhookConfiguration = "dynsecret-webhook"
    /// Subject alternative names of the serving certificate.
    public var dnsNames: [String] = []
    public var ipAddresses: [String] = []
    public var caValidity: Duration = .seconds(5 * 365 * 86_400)
    public var certificateValidity: Duration = .seconds(365 * 86_400)

    public init(namespace: String) { self.namespace = namespace }

    /// The names a Service `name` in `namespace` is reached by.
    public static func serviceNames(_ name: String, namespace: String) -> [String] {
        [name, "\(name).\(namespace)", "\(name).\(namespace).svc", "\(name).\(namespace).svc.cluster.local"]
    }
}

/// What `--self-signed-ca` serves: the serving pair and the CAs the API server must trust (newest first).
struct SelfSignedMaterial: Equatable, CustomStringConvertible, CustomReflectable {
    var certificate: [UInt8]
    var key: [UInt8]
    var bundle: [UInt8]
    /// The serving certificate's end of validity.
    var notAfter: Int64
    /// The CA that signed it.
    var issuer: [UInt8] = []

    /// Never the key.
    var description: String { "SelfSignedMaterial(not after \(notAfter), key redacted)" }
    var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}

/// Keeps a CA and a serving certificate in a Secret of the webhook's namespace and the CA bundle in its
/// `ValidatingWebhookConfiguration`, without cert-manager.
///
/// Each replica reads the Secret and, when the serving certificate or the CA has less than a third of its lifetime
/// left (or is missing, unreadable, or for other names), writes a new one with the Secret's `resourceVersion` as
/// precondition: when replicas race, one write wins and the others read and use it. A new CA joins the bundle ahead of
/// the previous one, which stays until it expires, so certificates signed by either verify during the change. The
/// Secret must carry dynsecret's annotation: a Secret of that name made by someone else is never overwritten.
final class SelfSignedCertificates: Sendable {
    static let annotation = "dynsecret.io/self-signed-ca"
    static let namesAnnotation = "dynsecret.io/serving-names"

    let client: KubeClient
    let settings: SelfSignedSettings
    private let now: @Sendable () -> Int64

    init(client: KubeClient, settings: SelfSignedSettings, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.client = client
        self.settings = settings
        self.now = now
    }

    var secretRef: String { "\(settings.namespace)/\(settings.secretName)" }
    private var names: String { (settings.dnsNames + settings.ipAddresses).joined(separator: ",") }

    /// Reads the Secret and writes a new CA or serving certificate when one is due; returns what to serve. Throws
    /// a `WebhookError` for a foreign Secret, and the API error when the Secret cannot be read or written.
    func ensure() async throws -> SelfSignedMaterial {
        for _ in 0..<5 {
            let existing = try await readSecret()
            if let existing, existing.metadata.annotations[Self.annotation] == nil {
                throw WebhookError("the Secret \(secretRef) exists and was not made by dynsecret webhook --self-signed-ca (no \(Self.annotation) annotation); it is left alone: delete it or choose another --self-signed-secret")
            }
            let (material, data) = try issue(existing?.data ?? [:], namesMatch: existing?.metadata.annotations[Self.namesAnnotation] == names)
            guard let data else { return material }
            if try await write(data, over: existing) { return material }
            // Another replica wrote first (Conflict or AlreadyExists): read and use what it wrote.
        }
        throw Contended(what: "the Secret \(secretRef)")
    }

    private func readSecret() async throws(KubeError) -> Secret? {
        try await optional { () async throws(KubeError) in try await client.get(Secret.self, namespace: settings.namespace, name: settings.secretName) }
    }

    /// Creates the Secret, or updates `existing` under its resourceVersion; false on 409.
    private func write(_ data: [String: [UInt8]], over existing: Secret?) async throws(KubeError) -> Bool {
        do {
            if var secret = existing {
                // The type is immutable: a Secret shipped empty (Opaque) keeps its type.
                secret.data = data
                secret.metadata.annotations[Self.namesAnnotation] = names
                _ = try await client.update(secret)
            } else {
                var meta = ObjectMeta()
                meta.name = settings.secretName
                meta.namespace = settings.namespace
                meta.labels = ["app.kubernetes.io/name": "dynsecret", "app.kubernetes.io/component": "webhook"]
                meta.annotations = [Self.annotation: "v1", Self.namesAnnotation: names]
                _ = try await client.create(Secret(metadata: meta, type: SecretType.tls, data: data))
            }
            return true
        } catch {
            if error.httpStatus == 409 { return false }
            throw error
        }
    }

    /// The material in `data`, and new Secret data when something is due.
    func issue(_ data: [String: [UInt8]], namesMatch: Bool) throws -> (SelfSignedMaterial, [String: [UInt8]]?) {
        let t = now()
        // Due with a third of its lifetime left, or when it starts more than 5 minutes from now (a clock that lags
        // this much would see every certificate as not yet valid; within that, replicas never reissue each other's).
        func due(_ cert: X509Certificate) -> Bool { t + 300 < cert.notBefore || (cert.notAfter - t) * 3 < (cert.notAfter - cert.notBefore) }
        func pair(_ certKey: String, _ keyKey: String) -> (IssuedCertificate, X509Certificate)? {
            guard let c = data[certKey], let k = data[keyKey], let cert = try? X509Certificate.parseChain(pem: c).first,
                  let key = try? PrivateKey(pem: k), cert.matches(key) else { return nil }
            return (IssuedCertificate(certificatePEM: c, privateKeyPEM: k), cert)
        }
        var changed = false
        let ca: IssuedCertificate
        if let current = pair("ca.crt", "ca.key"), !due(current.1) {
            ca = current.0
        } else {
            let validity = Self.seconds(settings.caValidity)
            ca = try CertificateIssuer.certificateAuthority(commonName: "dynsecret-webhook-ca@\(t)", notBefore: t - Self.backdate(validity), notAfter: t + validity)
            changed = true
        }
        // The bundle: the current CA first, then earlier CAs until they expire.
        let earlier = (data["ca-bundle.crt"].map(Self.certificates) ?? []).filter { pem in
            pem != ca.certificatePEM && ((try? X509Certificate.parseChain(pem: pem))?.first.map { $0.notAfter > t } ?? false)
        }
        let bundleBytes = ([ca.certificatePEM] + earlier).flatMap { $0 }
        var serving: (IssuedCertificate, X509Certificate)
        if let current = pair("tls.crt", "tls.key"), !changed, namesMatch, !due(current.1),
           CertificateIssuer.isIssued(current.0.certificatePEM, by: ca.certificatePEM) {
            serving = current
        } else {
            let validity = Self.seconds(settings.certificateValidity)
            let issued = try CertificateIssuer.serving(commonName: settings.dnsNames.first ?? settings.ipAddresses.first ?? "dynsecret-webhook",
                                                       dnsNames: settings.dnsNames, ipAddresses: settings.ipAddresses,
                                                       notBefore: t - Self.backdate(validity), notAfter: t + validity, issuer: ca)
            serving = (issued, try X509Certificate.parseChain(pem: issued.certificatePEM)[0])
            changed = true
        }
        let material = SelfSignedMaterial(certificate: serving.0.certificatePEM, key: serving.0.privateKeyPEM, bundle: bundleBytes,
                                          notAfter: serving.1.notAfter, issuer: ca.certificatePEM)
        guard changed || data["ca-bundle.crt"] != bundleBytes else { return (material, nil) }
        return (material, ["tls.crt": serving.0.certificatePEM, "tls.key": serving.0.privateKeyPEM,
                           "ca.crt": ca.certificatePEM, "ca.key": ca.privateKeyPEM, "ca-bundle.crt": bundleBytes])
    }

    /// Sets `clientConfig.caBundle` of every webhook in the configuration to `bundle`, followed by every unexpired CA
    /// that webhook trusts now and `bundle` lacks: a replica that read the Secret before another renewed the CA, or a
    /// Secret made again from nothing, never takes away the CA of a certificate still being served. Returns false
    /// when the configuration does not exist (yet); throws the API error otherwise.
    func inject(_ bundle: [UInt8]) async throws -> Bool {
        let resource = KubeResource(group: "admissionregistration.k8s.io", version: "v1", plural: "validatingwebhookconfigurations",
                                    kind: "ValidatingWebhookConfiguration", namespaced: false)
        let t = now()
        let ours = Self.certificates(bundle)
        for _ in 0..<5 {
            guard let config = try await optional({ () async throws(KubeError) in try await client.get(resource, name: settings.webhookConfiguration) }) else {
                return false
            }
            guard var object = config.objectValue else { throw WebhookError("ValidatingWebhookConfiguration \(settings.webhookConfiguration): not an object") }
            var hooks = object["webhooks"]?.arrayValue ?? []
            var changed = false
            for i in hooks.indices {
                guard var hook = hooks[i].objectValue else { continue }
                var clientConfig = hook["clientConfig"]?.objectValue ?? JSONObject()
                let current = Self.certificates(clientConfig["caBundle"]?.stringValue.flatMap { Base64.decode($0) } ?? [])
                let kept = current.filter { pem in
                    !ours.contains(pem) && ((try? X509Certificate.parseChain(pem: pem))?.first.map { $0.notAfter > t } ?? false)
                }
                let encoded = JSONValue.string(Base64.encode((ours + kept).flatMap { $0 }))
                if clientConfig["caBundle"] != encoded {
                    clientConfig["caBundle"] = encoded
                    hook["clientConfig"] = .object(clientConfig)
                    hooks[i] = .object(hook)
                    changed = true
                }
            }
            guard changed else { return true }
            object["webhooks"] = .array(hooks)
            if try await optional({ () async throws(KubeError) in try await client.update(resource, .object(object)) }, absentOn: 409) != nil { return true }
        }
        throw Contended(what: "ValidatingWebhookConfiguration \(settings.webhookConfiguration)")
    }

    /// Five writes in a row lost to other writers (tried again at the next check).
    struct Contended: Error, CustomStringConvertible {
        var what: String
        var description: String { "\(what) kept changing under five attempts to write it" }
    }

    /// `body`'s result, or nil when it fails with HTTP `absentOn`.
    private func optional<T>(_ body: () async throws(KubeError) -> T, absentOn code: Int = 404) async throws(KubeError) -> T? {
        do { return try await body() } catch {
            if error.httpStatus == code { return nil }
            throw error
        }
    }

    /// The PEM blocks of `bytes`, each as its own bytes.
    static func certificates(_ bytes: [UInt8]) -> [[UInt8]] {
        let end = Array("-----END CERTIFICATE-----\n".utf8)
        var out: [[UInt8]] = []
        var start = 0
        var i = 0
        while i + end.count <= bytes.count {
            if bytes[i] == end[0], Array(bytes[i..<(i + end.count)]) == end {
                out.append(Array(bytes[start..<(i + end.count)]))
                i += end.count
                start = i
            } else {
                i += 1
            }
        }
        return out
    }

    static func seconds(_ d: Duration) -> Int64 { max(d.components.seconds, 1) }

    /// notBefore a little in the past for clocks behind ours: 5 minutes, or a tenth of a short lifetime.
    static func backdate(_ validity: Int64) -> Int64 { min(300, validity / 10) }
}
