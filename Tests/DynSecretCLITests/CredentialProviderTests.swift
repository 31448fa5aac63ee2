import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// Kubelet credential provider plugins as real processes: the request on stdin, the response on stdout, bounded in
/// time and size; and the controller minting from one, fanning the pull secret out and refreshing every copy
/// before it expires, keeping the copies when the plugin starts failing.
@Suite(.serialized) struct CredentialProviderTests {
    static let canary = "CANARY-minted-4e81c2"

    /// A plugin script: Python, reading the request from stdin.
    static func plugin(_ dir: TempDir, _ name: String, _ body: String) throws -> String {
        let path = try dir.file(name, "#!/usr/bin/env python3\nimport json, sys, os, time\n" + body, mode: 0o755)
        return path
    }

    static func source(_ command: String, timeout: Duration = .seconds(3)) -> MintedCredentialSource {
        MintedCredentialSource(name: "acr", provider: .exec(.init(command: command, args: ["--flag"], env: [(name: "PLUGIN_MODE", value: "test")],
                                                                  image: "myreg.azurecr.io/team/app:1", timeout: timeout)))
    }

    static let answer = #"""
        req = json.load(sys.stdin)
        assert req["kind"] == "CredentialProviderRequest" and sys.argv[1:] == ["--flag"] and os.environ["PLUGIN_MODE"] == "test"
        print(json.dumps({"kind": "CredentialProviderResponse", "apiVersion": req["apiVersion"], "cacheKeyType": "Registry",
                          "cacheDuration": "2s", "auth": {req["image"].split("/")[0]: {"username": "u", "password": "p-" + req["image"]}}}))
        """#

    @Test(.enabled(if: onPath("python3") != nil, "needs python3"))
    func pluginsRunAsTheKubeletRunsThem() async throws {
        let dir = try TempDir()
        let m = try await Self.source(try Self.plugin(dir, "ok", Self.answer)).mint()
        #expect(m.lifetime == .seconds(2))
        #expect(m.auths == ["myreg.azurecr.io": RegistryCredential(username: "u", password: "p-myreg.azurecr.io/team/app:1")], "the request reached the plugin")

        let failing: [(String, String, String)] = [
            ("hang", "time.sleep(60)\n", "no answer within"),
            ("fails", "sys.stderr.write('denied: token abcdefghijklmnopqrstuvwxyz0123456789 expired\\n'); sys.exit(3)\n", "exited with status 3: denied: token [redacted] expired"),
            ("garbage", "print('<html>oops</html>')\n", "the response is discarded: output is not a JSON CredentialProviderResponse"),
            ("huge", "sys.stdout.write('x' * (10 * 1024 * 1024))\n", "output larger than 1024 KiB"),
            ("keytype", Self.answer.replacingOccurrences(of: "\"Registry\"", with: "\"Forever\""), "cacheKeyType \"Forever\" is not one of"),
            ("version", Self.answer.replacingOccurrences(of: "req[\"apiVersion\"]", with: "\"credentialprovider.kubelet.k8s.io/v1alpha1\""), "does not match the request's"),
        ]
        for (name, body, message) in failing {
            let started = ContinuousClock.now
            let source = Self.source(try Self.plugin(dir, name, body), timeout: .seconds(1))
            do throws(KubeError) {
                _ = try await source.mint()
                Issue.record("\(name) minted")
            } catch {
                #expect(error.message.hasPrefix("credential acr: plugin ") && error.message.contains(message), "\(name): \(error.message)")
                #expect(!error.message.contains("abcdefghijklmnopqrstuvwxyz"))
            }
            #expect(ContinuousClock.now - started < .seconds(10), "\(name) is bounded in time")
        }
    }

    @Test(.enabled(if: onPath("python3") != nil, "needs python3"))
    func mintAndReplicateFromTheCLI() async throws {
        let dir = try TempDir()
        let ok = try Self.plugin(dir, "ok", Self.answer.replacingOccurrences(of: "\"p-\" + req[\"image\"]", with: "\"\(Self.canary)\""))
        let broken = try Self.plugin(dir, "broken", "sys.exit(7)\n")
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: minted}
            spec:
              credentials:
              - {name: acr, exec: {command: "\(ok)", args: [--flag], env: [{name: PLUGIN_MODE, value: test}], image: "myreg.azurecr.io/app:1"}}
              - {name: down, exec: {command: "\(broken)", image: "other.example.com/app:1"}}
              rules:
              - name: pull
                source: {credentials: [acr]}
                targetName: acr-pull
                targets: {namespaces: [team-a]}
            """)
        var r = await dynsecret(["credentials", "mint", "--policy", policy, "acr"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.range(of: #"acr\s+exec\s+myreg.azurecr.io\s+u\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+2s\s+1s"#, options: .regularExpression) != nil, "\(r.stdout)")
        r = await dynsecret(["credentials", "mint", "--policy", policy, "-o", "json"])
        #expect(r.code == 1, "one credential fails")
        let doc = try JSONParser.parse(Array(r.stdout.utf8))
        #expect(doc["credentials"]?.arrayValue?.map { $0["name"]?.stringValue ?? "" } == ["acr", "down"])
        #expect(doc["credentials"]?.arrayValue?.last?["error"]?.stringValue?.contains("exited with status 7") == true)
        #expect(!r.stdout.contains(Self.canary) && !r.stderr.contains(Self.canary), "never the token")

        let e = try await KubeEmulator.start(EmulatorOptions())
        defer { Task { await e.stop() } }
        let c = KubeClient(config: KubeConfig(server: e.url))
        _ = try await c.create(.namespaces, Fixtures.namespace("team-a"))
        let kubeconfig = try dir.file("kubeconfig", e.kubeconfig())
        r = await dynsecret(["replicate", "--policy", policy, "--kubeconfig", kubeconfig, "--once"])
        #expect(r.code == 0, "\(r.stderr)")
        let copy = try await c.get(Secret.self, namespace: "team-a", name: "acr-pull")
        #expect(try PullSecret.entries(of: copy)?.first?.credential.password == Self.canary)
        #expect(!r.stdout.contains(Self.canary) && !r.stderr.contains(Self.canary))
        r = await dynsecret(["replicate", "--policy", policy, "--kubeconfig", kubeconfig, "--dry-run"])
        #expect(r.code == 0 && r.stdout.contains("policy minted: 0 create, 0 update"), "the same token again writes nothing: \(r.stdout)")
    }

    @Test(.heavy, .enabled(if: onPath("python3") != nil && dynsecretBinary != nil, "needs python3 and the dynsecret binary"))
    func theControllerMintsFansOutRefreshesBeforeExpiryAndKeepsCopiesWhenThePluginFails() async throws {
        let dir = try TempDir()
        let counter = dir.url.appendingPathComponent("mints").path
        let failFlag = dir.url.appendingPathComponent("fail").path
        let plugin = try Self.plugin(dir, "provider", #"""
            req = json.load(sys.stdin)
            if os.path.exists("\#(failFlag)"):
                sys.stderr.write("AADSTS700024: client assertion is not within its valid time range\n"); sys.exit(1)
            n = int(open("\#(counter)").read()) + 1 if os.path.exists("\#(counter)") else 1
            open("\#(counter)", "w").write(str(n))
            print(json.dumps({"kind": "CredentialProviderResponse", "apiVersion": req["apiVersion"], "cacheKeyType": "Registry", "cacheDuration": "2s",
                              "auth": {"*.azurecr.io": {"username": "00000000-0000-0000-0000-000000000000", "password": "\#(Self.canary)-%d" % n}}}))
            """#)
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: "admin", user: "admin"), TokenGrant(token: "ctl", user: "controller")]
        let e = try await KubeEmulator.start(options)
        defer { Task { await e.stop() } }
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .token("admin")))
        let namespaces = (0..<20).map { "team-\($0)" }
        try await Fixtures.createNamespaces(c, namespaces, labels: ["pull": "yes"])
        // team-19 already has a Secret of the target name that dynsecret did not write: left alone, and the conflict is
        // an Event on that object (a minted source is no object to put it on).
        _ = try await c.create(Fixtures.secret("team-19", "acr-pull", "theirs"))
        let targets = namespaces.count - 1
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: minted}
            spec:
              credentials:
              - name: acr
                exec: {command: "\(plugin)", image: "myreg.azurecr.io/app:1", timeout: 5s}
              rules:
              - name: pull
                source: {credentials: [acr]}
                targetName: acr-pull
                targets: {namespaceSelector: {matchLabels: {pull: "yes"}}}
                serviceAccounts: [default]
            """)
        e.resetCounters()
        let ctl = try ControllerProcess(["--policy", policy, "--kubeconfig", try dir.file("kubeconfig", e.kubeconfig(token: "ctl")),
                                         "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"],
                                        log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }
        let metricsPort = try await ctl.port("metrics"), healthPort = try await ctl.port("health")
        func passwords() async throws -> [String] {
            try await c.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items.map { s in
                (try? PullSecret.entries(of: s))??.first?.credential.password ?? ""
            }
        }
        func mints() -> Int { Int((try? String(contentsOfFile: counter, encoding: .utf8)) ?? "0") ?? 0 }
        #expect(try await waitFor(.seconds(30)) { try await passwords().count == targets } != nil, "\(ctl.log.suffix(2000))")
        #expect(try await waitFor(.seconds(10)) {
            try await c.list(Event.self, namespace: "team-19").items.contains { $0.reason == "ReplicaConflict" && $0.involvedObject["name"] == "acr-pull" }
        } != nil, "\(ctl.log.suffix(2000))")
        #expect(try await c.get(ServiceAccount.self, namespace: "team-3", name: "default").imagePullSecrets == ["acr-pull"])

        // 2 s lifetimes: minted again at 1 s; every copy carries each new token well before the old one expires.
        var seen: [Int: Set<String>] = [:]
        let window = ContinuousClock.now
        while ContinuousClock.now - window < .seconds(6) {
            for (i, p) in try await passwords().enumerated() { seen[i, default: []].insert(p) }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(seen.values.allSatisfy { $0.count >= 4 }, "each copy followed every refresh: \(seen.values.map(\.count))")
        // Writes ÷ (mints × targets): settle on the last mint first.
        try "".write(toFile: failFlag, atomically: true, encoding: .utf8)
        let last = mints()
        #expect(try await waitFor(.seconds(10)) { try await passwords().allSatisfy { $0 == "\(Self.canary)-\(last)" } } != nil)
        let counters = e.counters()
        let secretWrites = (counters["create secrets"] ?? 0) + (counters["patch secrets"] ?? 0) + (counters["update secrets"] ?? 0)
        // Plus one create in team-19, refused with 409 AlreadyExists: how the controller learns of the foreign Secret
        // (it caches only its own replicas), remembered so it is never sent again.
        #expect(secretWrites == last * targets + 1, "writes \(secretWrites) for \(last) mints × \(targets) targets")

        // The plugin fails from now on: the copies stay, with the last good token; failures are counted and logged.
        try await Task.sleep(for: .seconds(4))
        #expect(try await passwords() == Array(repeating: "\(Self.canary)-\(last)", count: targets), "a failing plugin never removes a copy")
        #expect(e.counters()["delete secrets"] == nil)
        #expect(try httpGet("http://127.0.0.1:\(healthPort)/readyz").status == 200, "a failing credential never makes the controller unready")
        let exposition = try httpGet("http://127.0.0.1:\(metricsPort)/metrics").body
        #expect(exposition.range(of: #"dynsecret_credential_refresh_total\{credential="acr",result="error"\} [1-9]"#, options: .regularExpression) != nil, "\(exposition)")
        #expect(exposition.contains("dynsecret_credential_refresh_total{credential=\"acr\",result=\"success\"} \(last)"), "\(exposition)")
        #expect(exposition.contains("dynsecret_credential_expiry_timestamp_seconds{credential=\"acr\"}"))
        let log = ctl.log
        #expect(log.contains("credential refresh failed; the credential in use stays") && log.contains("AADSTS700024"), "\(log.suffix(2000))")
        for text in [log, exposition] { #expect(!text.contains(Self.canary)) }
        let stop = await ctl.stop()
        #expect(stop.status == 0)
    }
}
