import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// A `dynsecret webhook` child process (the built binary), logging to a file.
final class WebhookProcess: @unchecked Sendable {
    let process: Process
    let logPath: String

    init(_ args: [String], log: String) throws {
        guard let bin = dynsecretBinary else { throw TestFailure("the dynsecret binary was not found next to the tests") }
        logPath = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process = try launch(bin, ["webhook"] + args, stdout: log, stderr: log)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The port from the `webhook.listening` log line.
    func port() async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            for line in log.split(separator: "\n") where line.contains("webhook.listening") {
                if let r = line.range(of: "address=127.0.0.1:"), let p = Int(line[r.upperBound...].prefix(while: \.isNumber)) { return p }
            }
            if !process.isRunning { throw TestFailure("webhook exited (\(process.terminationStatus)): \(log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("webhook did not log its port: \(log.suffix(2000))")
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// HTTPS with curl trusting `ca` (an independent client): status and body of each URL, on one connection.
func curlTLS(_ ca: String, _ urls: [String], post body: String? = nil, verbose: Bool = false) throws -> RunResult {
    var args = ["-s", "--max-time", "20", "--cacert", ca, "-w", "\n%{http_code}\n"]
    if verbose { args.append("-v") }
    if let body { args += ["-H", "Content-Type: application/json", "--data-binary", body] }
    return try runProcess("/usr/bin/curl", args + urls)
}

/// The webhook end to end: the built `dynsecret webhook` binary behind the emulator, which calls it as the API server
/// does, with the installed kubectl as the client.
@Suite(.serialized, .heavy) struct WebhookTests {
    static let canary = "CANARY-w3bh00k-s3cr3t"
    static let rules: [TokenGrant.Rule] = [TokenGrant.Rule(verbs: ["list", "watch"], resources: ["secrets", "serviceaccounts", "namespaces"])]

    static func deployment(_ name: String, _ ns: String, image: String = "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04", pullSecret: String? = nil) -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: \(name)
          namespace: \(ns)
        spec:
          replicas: 1
          selector:
            matchLabels: {app: \(name)}
          template:
            metadata:
              labels: {app: \(name)}
            spec:
        \(pullSecret.map { "      imagePullSecrets: [{name: \($0)}]\n" } ?? "")      containers:
              - name: cuda
                image: \(image)
        """
    }

    static func pullSecret(_ name: String, _ ns: String, payload: String) -> String {
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: \(name), namespace: \(ns)}
        type: kubernetes.io/dockerconfigjson
        data:
          .dockerconfigjson: \(Base64.encode(Array(payload.utf8)))
        """
    }

    static func configuration(port: Int, ca: [UInt8], failurePolicy: String) -> String {
        """
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingWebhookConfiguration
        metadata: {name: dynsecret}
        webhooks:
        - name: pull-secrets.dynsecret.io
          admissionReviewVersions: [v1]
          sideEffects: None
          timeoutSeconds: 5
          failurePolicy: \(failurePolicy)
          clientConfig:
            url: https://127.0.0.1:\(port)/validate
            caBundle: \(Base64.encode(ca))
          namespaceSelector:
            matchExpressions:
            - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kube-public, kube-node-lease]}
          rules:
          - apiGroups: [""]
            apiVersions: [v1]
            operations: [CREATE, UPDATE]
            resources: [pods, secrets, serviceaccounts, replicationcontrollers]
          - apiGroups: [apps]
            apiVersions: [v1]
            operations: [CREATE, UPDATE]
            resources: [deployments, statefulsets, daemonsets, replicasets]
          - apiGroups: [batch]
            apiVersions: [v1]
            operations: [CREATE, UPDATE]
            resources: [jobs, cronjobs]
        """
    }

    struct Setup {
        let cluster: TLSCluster
        let certs: TempDir
        let webhook: WebhookProcess
        let port: Int
        var ca: String { certs.url.appendingPathComponent("ca.crt").path }
    }

    static func start(extra: [String] = []) async throws -> Setup {
        let cluster = try await TLSCluster.start(admin: "admin-token", controller: "webhook-token", rules: rules)
        let certs = try TempDir()
        try loopbackServerCertificate(in: certs)
        let webhook = try WebhookProcess([
            "--addr", "127.0.0.1:0", "--kubeconfig", try cluster.controllerConfig(), "--private-registry", "nvcr.io",
            "--tls-cert-file", certs.url.appendingPathComponent("server.crt").path,
            "--tls-private-key-file", certs.url.appendingPathComponent("server.key").path, "--log-level", "debug",
        ] + extra, log: certs.url.appendingPathComponent("webhook.log").path)
        let port = try await webhook.port()
        let setup = Setup(cluster: cluster, certs: certs, webhook: webhook, port: port)
        let ready = await waitFor(.seconds(20)) { (try? curlTLS(setup.ca, ["https://127.0.0.1:\(port)/readyz"]))?.stdout.hasSuffix("\n200\n") == true }
        #expect(ready != nil, "readyz: \(webhook.log.suffix(2000))")
        return setup
    }

    @Test func kubectlApplyIsRefusedWarnedOrAllowedAsTheWebhookDecides() async throws {
        try #require(kubectlPath != nil)
        let s = try await Self.start()
        defer { s.webhook.stop() }
        let k = s.cluster
        for (ns, mode) in [("training", "enforce"), ("sandbox", "warn")] {
            #expect(try k.kubectl(["create", "namespace", ns]).code == 0)
            #expect(try k.kubectl(["label", "namespace", ns, "dynsecret.io/admission=\(mode)"]).code == 0)
        }
        let ca = Array(try Data(contentsOf: URL(fileURLWithPath: s.ca)))
        let applied = try k.kubectl(["apply", "-f", "-"], stdin: Self.configuration(port: s.port, ca: ca, failurePolicy: "Ignore"))
        #expect(applied.code == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("validatingwebhookconfiguration.admissionregistration.k8s.io/dynsecret created"), "\(applied.stdout)")

        // Enforce: refused with the webhook's message, as the API server words it. The label reaches the cache first.
        var refused: (code: Int32, stdout: String, stderr: String) = (0, "", "")
        _ = try await waitFor(.seconds(10)) {
            refused = try k.kubectl(["apply", "-f", "-"], stdin: Self.deployment("trainer", "training"))
            return refused.code != 0
        }
        #expect(refused.code != 0)
        for part in [#"admission webhook "pull-secrets.dynsecret.io" denied the request: dynsecret: "#, #"container "cuda""#,
                     "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04", "(registry nvcr.io)", "the pod has no pull secrets", "[image-uncovered]"] {
            #expect(refused.stderr.contains(part), "\(part) in \(refused.stderr)")
        }
        #expect(try k.kubectl(["get", "deployment", "trainer", "-n", "training"]).code != 0)

        // Warn: created, and kubectl prints the warning.
        let warned = try k.kubectl(["apply", "-f", "-"], stdin: Self.deployment("trainer", "sandbox"))
        #expect(warned.code == 0, "\(warned.stderr)")
        #expect(warned.stdout.contains("deployment.apps/trainer created"))
        #expect(warned.stderr.contains("Warning: dynsecret[image-uncovered]: container \"cuda\": image nvcr.io/nvidia/cuda"), "\(warned.stderr)")

        // Covered: no warning, in either mode.
        let auth = Base64.encode(Array("$oauthtoken:\(Self.canary)".utf8))
        let good = try k.kubectl(["apply", "-f", "-"], stdin: Self.pullSecret("ngc", "training", payload: #"{"auths":{"nvcr.io":{"auth":"\#(auth)"}}}"#))
        #expect(good.code == 0, "\(good.stderr)")
        var covered: (code: Int32, stdout: String, stderr: String) = (1, "", "")
        _ = try await waitFor(.seconds(10)) {
            covered = try k.kubectl(["apply", "-f", "-"], stdin: Self.deployment("covered", "training", pullSecret: "ngc"))
            return covered.code == 0
        }
        #expect(covered.code == 0, "\(covered.stderr)")
        #expect(!covered.stderr.contains("Warning"), "\(covered.stderr)")

        // A malformed pull secret is refused in enforce mode (the kubelet could not decode it).
        let bad = try k.kubectl(["apply", "-f", "-"], stdin: Self.pullSecret("broken", "training", payload: #"{"auths":{"nvcr.io":{"auth":"!!\#(Self.canary)"}}}"#))
        #expect(bad.code != 0)
        #expect(bad.stderr.contains(#"admission webhook "pull-secrets.dynsecret.io" denied the request: dynsecret: "#) && bad.stderr.contains("[pull-secret-malformed]"), "\(bad.stderr)")

        // A system namespace is never reviewed (namespaceSelector and the webhook's own exclusion).
        #expect(try k.kubectl(["apply", "-f", "-"], stdin: Self.deployment("system", "kube-system")).code == 0)

        // No secret value in any response, log or metric.
        let metrics = try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/metrics"])
        #expect(metrics.stdout.contains(#"dynsecret_admission_requests_total{kind="Deployment",result="denied"}"#), "\(metrics.stdout)")
        #expect(metrics.stdout.contains(#"dynsecret_admission_requests_total{kind="Deployment",result="warned"}"#))
        #expect(metrics.stdout.contains("dynsecret_admission_review_duration_seconds_bucket"))
        for text in [refused.stderr, warned.stderr, covered.stderr, bad.stderr, bad.stdout, metrics.stdout, s.webhook.log] {
            #expect(!text.contains(Self.canary) && !text.contains(auth))
        }

        // The webhook down: failurePolicy Ignore lets the apply through; Fail refuses it.
        s.webhook.stop()
        let ignored = try k.kubectl(["apply", "-f", "-"], stdin: Self.deployment("while-down", "training"))
        #expect(ignored.code == 0, "\(ignored.stderr)")
        // Replaced rather than re-applied: the emulator's strategic merge patch does not merge `webhooks` by name.
        #expect(try k.kubectl(["delete", "validatingwebhookconfiguration", "dynsecret"]).code == 0)
        #expect(try k.kubectl(["create", "-f", "-"], stdin: Self.configuration(port: s.port, ca: ca, failurePolicy: "Fail")).code == 0)
        let failed = try k.kubectl(["apply", "-f", "-"], stdin: Self.deployment("while-down-2", "training"))
        #expect(failed.code != 0)
        #expect(failed.stderr.contains(#"failed calling webhook "pull-secrets.dynsecret.io""#), "\(failed.stderr)")
    }

    @Test func badReviewsAre400AndProbesAnswer() async throws {
        let s = try await Self.start()
        defer { s.webhook.stop() }
        let bad = try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/validate"], post: #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
        #expect(bad.stdout.hasSuffix("\n400\n") && bad.stdout.contains("invalid AdmissionReview: request: required object is missing"), "\(bad.stdout)")
        #expect(try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/healthz"]).stdout == "ok\n\n200\n")
        #expect(try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/nothing"]).stdout.hasSuffix("\n404\n"))
    }

    /// The serving certificate is replaced (key first, then certificate: a mismatched pair in between) while clients
    /// keep sending reviews on open connections and new ones; every request is answered, and new connections get the
    /// new certificate.
    @Test func certificateRotationLosesNoRequest() async throws {
        let s = try await Self.start(extra: ["--certificate-poll", "100ms"])
        defer { s.webhook.stop() }
        let review = #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"rot","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"default","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#
        let url = "https://127.0.0.1:\(s.port)/validate"
        let before = try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/healthz"], verbose: true)
        #expect(before.stderr.contains("CN=127.0.0.1"), "\(before.stderr)")

        let clients = (0..<4).map { _ in
            Task.detached { () throws -> [String] in
                var codes: [String] = []
                for _ in 0..<6 {
                    let r = try curlTLS(s.ca, Array(repeating: url, count: 25), post: review)
                    codes += r.stdout.split(separator: "\n").filter { $0.count == 3 && $0.allSatisfy(\.isNumber) }.map(String.init)
                    #expect(r.stdout.components(separatedBy: #""uid":"rot","allowed":true"#).count - 1 == 25, "\(r.stdout.prefix(500))")
                }
                return codes
            }
        }
        // Rotate: a new key and certificate from the same CA, written one file at a time.
        try await Task.sleep(for: .milliseconds(300))
        let dir = s.certs.url.path
        func openssl(_ args: [String]) throws {
            let r = try runProcess("/usr/bin/openssl", args)
            guard r.code == 0 else { throw TestFailure("openssl: \(r.stderr)") }
        }
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(dir)/new.key", "-out", "\(dir)/new.csr", "-subj", "/CN=rotated"])
        try openssl(["x509", "-req", "-in", "\(dir)/new.csr", "-CA", "\(dir)/ca.crt", "-CAkey", "\(dir)/ca.key", "-CAcreateserial", "-out", "\(dir)/new.crt",
                     "-days", "2", "-extfile", "\(dir)/ext.cnf"])
        try FileManager.default.removeItem(atPath: "\(dir)/server.key")
        try FileManager.default.moveItem(atPath: "\(dir)/new.key", toPath: "\(dir)/server.key")
        try await Task.sleep(for: .milliseconds(400))
        try FileManager.default.removeItem(atPath: "\(dir)/server.crt")
        try FileManager.default.moveItem(atPath: "\(dir)/new.crt", toPath: "\(dir)/server.crt")

        var codes: [String] = []
        for c in clients { codes += try await c.value }
        #expect(codes.count == 4 * 6 * 25 && codes.allSatisfy { $0 == "200" }, "\(Dictionary(grouping: codes, by: { $0 }).mapValues(\.count))")
        let rotated = try await waitFor(.seconds(10)) {
            try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/healthz"], verbose: true).stderr.contains("CN=rotated")
        }
        #expect(rotated != nil, "\(s.webhook.log.suffix(2000))")
        let metrics = try curlTLS(s.ca, ["https://127.0.0.1:\(s.port)/metrics"]).stdout
        #expect(metrics.contains(#"dynsecret_admission_certificate_reloads_total{result="success"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"dynsecret_admission_certificate_reloads_total{result="error"}"#))
    }
}

/// `dynsecret webhook --self-signed-ca`: the CA and serving certificate kept in a Secret, the caBundle injected into
/// the webhook configuration, and both renewed, with the emulator calling the webhooks as the API server does (it
/// trusts only the injected caBundle) and kubectl as the client.
@Suite(.serialized, .heavy) struct SelfSignedWebhookTests {
    /// Exactly what deploy/components/webhook and webhook-self-signed grant.
    static func rules() throws -> [TokenGrant.Rule] {
        try DeployManifestTests.webhookEmulatorRules(components: ["webhook", "webhook-self-signed"])
    }

    static func configuration(ports: [Int]) -> String {
        var out = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: dynsecret-webhook}\nwebhooks:\n"
        for (i, port) in ports.enumerated() {
            out += """
            - name: replica-\(i).dynsecret.io
              admissionReviewVersions: [v1]
              sideEffects: None
              timeoutSeconds: 5
              failurePolicy: Fail
              clientConfig: {url: "https://localhost:\(port)/validate"}
              rules:
              - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}

            """
        }
        return out
    }

    /// The component's empty Secret, applied as a user would.
    static func shipSecret(_ k: TLSCluster) throws {
        let objects = try DeployManifestTests.objects(try DeployManifestTests.renderOverlay(components: ["webhook", "webhook-self-signed"]))
        let secret = try #require(objects.first { $0["kind"]?.stringValue == "Secret" && $0["metadata"]?["name"]?.stringValue == "dynsecret-webhook-ca" })
        let r = try k.kubectl(["apply", "-f", "-"], stdin: String(decoding: GoJSONWriter.compact(secret), as: UTF8.self))
        #expect(r.code == 0, "\(r.stderr)")
    }

    static func webhook(_ cluster: TLSCluster, _ dir: TempDir, _ name: String, _ extra: [String] = []) throws -> WebhookProcess {
        try WebhookProcess([
            "--addr", "127.0.0.1:0", "--kubeconfig", try cluster.controllerConfig(), "--private-registry", "nvcr.io", "-n", "dynsecret-system",
            "--self-signed-ca", "--certificate-host", "localhost", "--log-level", "debug",
        ] + extra, log: dir.url.appendingPathComponent("\(name).log").path)
    }

    static func secretData(_ k: TLSCluster) throws -> [String: [UInt8]] {
        let r = try k.kubectl(["get", "secret", "dynsecret-webhook-ca", "-n", "dynsecret-system", "-o", "json"])
        guard r.code == 0, let obj = try? JSONParser.parse(Array(r.stdout.utf8)) else { return [:] }
        var out: [String: [UInt8]] = [:]
        for m in obj["data"]?.objectValue?.members ?? [] { out[m.key] = m.value.stringValue.flatMap { Base64.decode($0) } }
        return out
    }

    static func injected(_ k: TLSCluster) throws -> [String] {
        let r = try k.kubectl(["get", "validatingwebhookconfiguration", "dynsecret-webhook", "-o", "jsonpath={.webhooks[*].clientConfig.caBundle}"])
        return r.stdout.split(separator: " ").map(String.init)
    }

    @Test func theCAIsKeptInASecretInjectedAndTrustedByTheAPIServer() async throws {
        try #require(kubectlPath != nil)
        let k = try await TLSCluster.start(admin: "admin-token", controller: "webhook-token", rules: try Self.rules())
        let dir = try TempDir()
        for ns in ["dynsecret-system", "training"] { #expect(try k.kubectl(["create", "namespace", ns]).code == 0) }
        #expect(try k.kubectl(["label", "namespace", "training", "dynsecret.io/admission=enforce"]).code == 0)
        try Self.shipSecret(k)
        // With the rendered Deployment's own arguments (the address mapped to loopback), started before its
        // configuration exists (the Deployment usually is): it says so and serves anyway.
        let rendered = try DeployManifestTests.objects(try DeployManifestTests.renderOverlay(components: ["webhook", "webhook-self-signed"])).first {
            $0["kind"]?.stringValue == "Deployment" && $0["metadata"]?["name"]?.stringValue == "dynsecret-webhook"
        }
        var args = DeployManifestTests.strings(rendered?["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["args"])
        try #require(args.first == "webhook" && args.contains("--addr=0.0.0.0:8443"), "\(args)")
        args = args.dropFirst().filter { !$0.hasPrefix("--log-format") }.map { $0 == "--addr=0.0.0.0:8443" ? "--addr=127.0.0.1:0" : $0 }
        let w = try WebhookProcess(args + ["--kubeconfig", try k.controllerConfig(), "-n", "dynsecret-system", "--certificate-host", "localhost",
                                           "--certificate-poll", "200ms"], log: dir.url.appendingPathComponent("w.log").path)
        defer { w.stop() }
        let port = try await w.port()
        #expect(w.log.contains("webhook.configuration-not-found"), "\(w.log.suffix(2000))")
        let data = try Self.secretData(k)
        #expect(Set(data.keys) == ["tls.crt", "tls.key", "ca.crt", "ca.key", "ca-bundle.crt"], "\(data.keys)")
        #expect(try k.kubectl(["get", "secret", "dynsecret-webhook-ca", "-n", "dynsecret-system", "-o", "jsonpath={.type}"]).stdout == "Opaque")
        // Re-applying the component's Secret keeps what the webhook wrote.
        try Self.shipSecret(k)
        #expect(try Self.secretData(k) == data)

        #expect(try k.kubectl(["create", "-f", "-"], stdin: Self.configuration(ports: [port])).code == 0)
        let bundle = try #require(data["ca-bundle.crt"])
        let set = try await waitFor(.seconds(10)) { try Self.injected(k) == [Base64.encode(bundle)] }
        #expect(set != nil, "\(w.log.suffix(2000))")

        // The API server (the emulator, trusting the caBundle only, checking the name localhost) calls it.
        let refused = try k.kubectl(["apply", "-f", "-"], stdin: WebhookTests.deployment("trainer", "training"))
        #expect(refused.code != 0 && refused.stderr.contains(#"admission webhook "replica-0.dynsecret.io" denied the request: dynsecret: "#), "\(refused.stderr)")

        // The serving certificate verifies against the injected CA for the Service's names (openssl, independently).
        for (file, key) in [("ca.crt", "ca-bundle.crt"), ("tls.crt", "tls.crt")] { try Data(data[key]!).write(to: dir.url.appendingPathComponent(file)) }
        for name in ["dynsecret-webhook.dynsecret-system.svc", "dynsecret-webhook.dynsecret-system.svc.cluster.local", "localhost"] {
            let v = try runProcess("/usr/bin/openssl", ["verify", "-CAfile", dir.url.appendingPathComponent("ca.crt").path, "-purpose", "sslserver",
                                                        "-verify_hostname", name, dir.url.appendingPathComponent("tls.crt").path])
            #expect(v.code == 0, "\(name): \(v.stdout)\(v.stderr)")
        }

        // A restart reuses the Secret: nothing is reissued.
        w.stop()
        let again = try Self.webhook(k, dir, "again")
        defer { again.stop() }
        _ = try await again.port()
        #expect(try Self.secretData(k) == data)

        // No key material in any log.
        for text in [w.log, again.log] {
            #expect(!text.contains("PRIVATE KEY") && !text.contains(Base64.encode(data["tls.key"]!)) && !text.contains(Base64.encode(data["ca.key"]!)))
        }
    }

    @Test func aForeignSecretOfThatNameIsLeftAlone() async throws {
        let k = try await TLSCluster.start(admin: "admin-token", controller: "webhook-token", rules: try Self.rules())
        let dir = try TempDir()
        #expect(try k.kubectl(["create", "namespace", "dynsecret-system"]).code == 0)
        #expect(try k.kubectl(["create", "secret", "generic", "dynsecret-webhook-ca", "-n", "dynsecret-system", "--from-literal=tls.crt=mine"]).code == 0)
        let w = try Self.webhook(k, dir, "w")
        w.process.waitUntilExit()
        #expect(w.process.terminationStatus != 0)
        #expect(w.log.contains("the Secret dynsecret-system/dynsecret-webhook-ca exists and was not made by dynsecret webhook --self-signed-ca"), "\(w.log)")
        #expect(try Self.secretData(k) == ["tls.crt": Array("mine".utf8)])
        let bad = try runProcess(dynsecretBinary!, ["webhook", "--self-signed-ca", "--tls-cert-file", "x"])
        #expect(bad.code == 2 && bad.stderr.contains("--self-signed-ca and --tls-cert-file/--tls-private-key-file exclude each other"), "\(bad.stderr)")
        let host = try runProcess(dynsecretBinary!, ["webhook", "--self-signed-ca", "--certificate-host", "a,DNS:evil"])
        #expect(host.code == 2 && host.stderr.contains("--certificate-host a,DNS:evil: not a DNS name or IP address"), "\(host.stderr)")
    }

    /// Two replicas share the Secret; with lifetimes of seconds, serving certificates and the CA are renewed many
    /// times while kubectl keeps creating through both webhooks (failurePolicy Fail): every call reaches both.
    @Test func twoReplicasRenewCertificatesAndTheCAWithoutAFailedCall() async throws {
        try #require(kubectlPath != nil)
        let k = try await TLSCluster.start(admin: "admin-token", controller: "webhook-token", rules: try Self.rules())
        let dir = try TempDir()
        for ns in ["dynsecret-system", "sandbox"] { #expect(try k.kubectl(["create", "namespace", ns]).code == 0) }
        try Self.shipSecret(k)
        let fast = ["--certificate-poll", "200ms", "--ca-validity", "12s", "--certificate-validity", "6s"]
        let a = try Self.webhook(k, dir, "a", fast)
        let b = try Self.webhook(k, dir, "b", fast)
        defer { a.stop(); b.stop() }
        let ports = [try await a.port(), try await b.port()]
        #expect(try k.kubectl(["create", "-f", "-"], stdin: Self.configuration(ports: ports)).code == 0)
        _ = try await waitFor(.seconds(10)) { try Self.injected(k).count == 2 && !(try Self.injected(k)[0].isEmpty) }

        var calls = 0
        var failures: [String] = []
        var leaves = Set<[UInt8]>()
        var cas = Set<[UInt8]>()
        var largestBundle = 0
        let end = ContinuousClock.now + .seconds(16)
        while ContinuousClock.now < end {
            let r = try k.kubectl(["create", "--dry-run=server", "-f", "-"], stdin: WebhookTests.deployment("d\(calls)", "sandbox"))
            calls += 1
            if r.code != 0 || !r.stderr.contains("Warning: dynsecret[image-uncovered]") { failures.append(r.stderr) }
            let data = try Self.secretData(k)
            if let leaf = data["tls.crt"] { leaves.insert(leaf) }
            if let ca = data["ca.crt"] { cas.insert(ca) }
            largestBundle = max(largestBundle, SelfSignedCertificatesProbe.count(data["ca-bundle.crt"] ?? []))
        }
        #expect(failures.isEmpty, "\(failures.count) of \(calls) failed: \(failures.prefix(3)) \(a.log.suffix(1500)) \(b.log.suffix(1500))")
        #expect(calls >= 20)
        #expect(leaves.count >= 3 && cas.count >= 2 && largestBundle == 2, "leaves \(leaves.count), CAs \(cas.count), bundle \(largestBundle)")
        // Both replicas answered every call.
        let ca = dir.url.appendingPathComponent("bundle.crt").path
        try Data(try Self.secretData(k)["ca-bundle.crt"]!).write(to: URL(fileURLWithPath: ca))
        for port in ports {
            let m = try curlTLS(ca, ["https://localhost:\(port)/metrics"]).stdout
            #expect(m.contains(#"dynsecret_admission_requests_total{kind="Deployment",result="warned"} \#(calls)"#), "\(m)")
            #expect(m.contains("dynsecret_admission_certificate_expiry_timestamp_seconds"))
        }
    }
}

enum SelfSignedCertificatesProbe {
    /// Certificates in a PEM bundle.
    static func count(_ pem: [UInt8]) -> Int { String(decoding: pem, as: UTF8.self).components(separatedBy: "-----BEGIN CERTIFICATE-----").count - 1 }
}
