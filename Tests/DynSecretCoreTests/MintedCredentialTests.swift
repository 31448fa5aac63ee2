import Testing
@testable import DynSecretCore

/// Minted credentials: the policy's `spec.credentials`, the kubelet credential provider protocol as the kubelet
/// reads it, the refresh rule, and minted sources in the one planner.
@Suite struct MintedCredentialTests {
    static func load(_ spec: String) throws(ManifestError) -> ReplicationPolicy {
        try ReplicationPolicy.load(Array("""
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: p}
        spec:
        \(spec)
        """.utf8), source: "policy.yaml")
    }

    static let good = """
          credentials:
          - name: acr
            exec: {command: /usr/local/bin/acr-credential-provider, args: [--config, /etc/acr.json], image: "myreg.azurecr.io/app:1", timeout: 5s}
            refresh: {before: 30m}
          - name: ngc
            exec: {command: ngc-provider, image: nvcr.io/nim/llm:1, env: [{name: NGC_ORG, value: acme}], defaultCacheDuration: 1h}
          rules:
          - name: pull
            source: {credentials: [acr, ngc]}
            targetName: registry-creds
            targets: {namespacePatterns: ["team-*"]}
            serviceAccounts: [default]
        """

    @Test func policyDecodesCredentialsAndMintedRules() throws {
        let p = try Self.load(Self.good)
        #expect(p.credentials.map(\.name) == ["acr", "ngc"])
        guard case .exec(let acr) = p.credentials[0].provider, case .exec(let ngc) = p.credentials[1].provider else { Issue.record("exec"); return }
        #expect(acr.command == "/usr/local/bin/acr-credential-provider" && acr.args == ["--config", "/etc/acr.json"] && acr.timeout == .seconds(5))
        #expect(acr.apiVersion == KubeletCredentialProvider.v1 && acr.defaultCacheDuration == .seconds(600))
        #expect(ngc.env.map(\.name) == ["NGC_ORG"] && ngc.defaultCacheDuration == .seconds(3600))
        #expect(p.credentials[0].refresh == .before(.seconds(1800)) && p.credentials[1].refresh == .atFraction(0.5))
        #expect(p.rules[0].source.isMinted && p.rules[0].source.credentials == ["acr", "ngc"] && p.rules[0].source.namespace.isEmpty)
        #expect(try ReplicationPolicy.decode(p.json) == p, "the policy document keeps credentials")
    }

    @Test func cloudProvidersDecode() throws {
        let p = try Self.load("""
              credentials:
              - name: ecr
                ecr: {region: us-gov-west-1, registryIds: ["123456789012", "210987654321"]}
              - name: gar
                google: {registries: [us-docker.pkg.dev, gcr.io, "localhost:5000"]}
                refresh: {atFraction: 0.25}
              rules:
              - name: pull
                source: {credentials: [ecr, gar]}
                targetName: cloud-pull
                targets: {namespaces: [a]}
            """)
        #expect(p.credentials[0].provider == .ecr(.init(region: "us-gov-west-1", registryIDs: ["123456789012", "210987654321"])))
        #expect(p.credentials[1].provider == .google(.init(registries: ["us-docker.pkg.dev", "gcr.io", "localhost:5000"])))
        #expect(p.credentials[1].refresh == .atFraction(0.25))
        #expect(try ReplicationPolicy.decode(p.json) == p, "the policy document keeps both providers")
        for r in ["us-east-1", "eu-central-2", "cn-north-1", "ap-southeast-5", "us-gov-east-1"] { #expect(MintedCredentialSource.isAWSRegion(r), "\(r)") }
        for r in ["us-east", "US-EAST-1", "us_east_1", "-east-1", "us--1", "us-east-1a"] { #expect(!MintedCredentialSource.isAWSRegion(r), "\(r)") }
    }

    @Test(arguments: [
        ("  credentials: [{name: a, exec: {command: x}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[0].exec.image: required value"),
        ("  credentials: [{name: a, ecr: {region: us-east-1}, exec: {command: x, image: i}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[0].ecr: exec and ecr are mutually exclusive"),
        ("  credentials: [{name: a}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]", "spec.credentials[0].exec: required value: give exec, ecr or google"),
        ("  credentials: [{name: a, ecr: {}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]", "spec.credentials[0].ecr.region: required value"),
        ("  credentials: [{name: a, ecr: {region: US_EAST}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]", "spec.credentials[0].ecr.region: invalid value \"US_EAST\": not an AWS region"),
        ("  credentials: [{name: a, ecr: {region: us-east-1, registryIds: [\"12345\"]}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[0].ecr.registryIds[0]: invalid value \"12345\": a registry ID is a 12-digit AWS account ID"),
        ("  credentials: [{name: a, ecr: {region: us-east-1, roleArn: x}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]", "spec.credentials[0].ecr.roleArn: unknown field"),
        ("  credentials: [{name: a, google: {registries: []}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]", "spec.credentials[0].google.registries: required value"),
        ("  credentials: [{name: a, google: {registries: [\"https://gcr.io\"]}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]", "spec.credentials[0].google.registries[0]: invalid value \"https://gcr.io\""),
        ("  credentials: [{name: a, exec: {command: x, image: i, apiVersion: v9}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[0].exec.apiVersion: unsupported value"),
        ("  credentials: [{name: a, exec: {command: x, image: i, timeout: soon}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[0].exec.timeout: \"soon\" is not a duration"),
        ("  credentials: [{name: a, exec: {command: x, image: i}, refresh: {atFraction: 1.5}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[0].refresh.atFraction: must be a number between 0 and 1"),
        ("  credentials: [{name: a, exec: {command: x, image: i}}, {name: a, exec: {command: y, image: i}}]\n  rules: [{name: r, source: {namespace: p, name: s}, targets: {namespaces: [a]}}]",
         "spec.credentials[1].name: duplicate credential name"),
        ("  credentials: [{name: a, exec: {command: x, image: i}}]\n  rules: [{name: r, source: {credentials: [b]}, targetName: t, targets: {namespaces: [a]}}]",
         "spec.rules[0].source.credentials[0]: unknown credential \"b\": declare it in spec.credentials"),
        ("  credentials: [{name: a, exec: {command: x, image: i}}]\n  rules: [{name: r, source: {credentials: [a]}, targets: {namespaces: [a]}}]",
         "spec.rules[0].targetName: required value"),
        ("  credentials: [{name: a, exec: {command: x, image: i}}]\n  rules: [{name: r, source: {credentials: [a], namespace: n}, targetName: t, targets: {namespaces: [a]}}]",
         "spec.rules[0].source.namespace: credentials and namespace are mutually exclusive"),
    ])
    func badCredentials(_ spec: String, _ message: String) {
        do {
            _ = try Self.load(spec)
            Issue.record("accepted: \(spec)")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }

    static func response(_ body: String) -> [UInt8] { Array(body.utf8) }

    @Test func responsesAreReadAsTheKubeletReadsThem() throws {
        let ok = #"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","cacheDuration":"2s","auth":{"*.azurecr.io":{"username":"00000000-0000-0000-0000-000000000000","password":"tok"}}}"#
        let m = try KubeletCredentialProvider.response(Self.response(ok), apiVersion: KubeletCredentialProvider.v1, defaultCacheDuration: .seconds(600))
        #expect(m.lifetime == .seconds(2) && m.auths["*.azurecr.io"]?.password == "tok")
        let noDuration = ok.replacingOccurrences(",\"cacheDuration\":\"2s\"", "")
        #expect(try KubeletCredentialProvider.response(Self.response(noDuration), apiVersion: KubeletCredentialProvider.v1, defaultCacheDuration: .seconds(42)).lifetime == .seconds(42))
        let cases: [(String, String)] = [
            (ok.replacingOccurrences("Registry", "Forever"), "cacheKeyType \"Forever\" is not one of Image, Registry, Global"),
            (ok.replacingOccurrences("kubelet.k8s.io/v1\"", "kubelet.k8s.io/v1beta1\""), "does not match the request's"),
            (ok.replacingOccurrences("\"2s\"", "\"soon\""), "cacheDuration \"soon\" is not a duration"),
            (ok.replacingOccurrences("CredentialProviderResponse", "ExecCredential"), "kind is not CredentialProviderResponse"),
            (#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Image","auth":{}}"#, "no credentials in auth"),
            ("not json", "output is not a JSON CredentialProviderResponse"),
        ]
        for (body, message) in cases {
            do {
                _ = try KubeletCredentialProvider.response(Self.response(body), apiVersion: KubeletCredentialProvider.v1, defaultCacheDuration: .seconds(600))
                Issue.record("accepted \(body)")
            } catch {
                #expect(error.description.contains(message), "\(error.description)")
                #expect(!error.description.contains("tok"), "no value in an error")
            }
        }
        let request = String(decoding: KubeletCredentialProvider.request(image: "nvcr.io/nim/llm:1", apiVersion: KubeletCredentialProvider.v1), as: UTF8.self)
        #expect(request == #"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"nvcr.io/nim/llm:1"}"#)
    }

    @Test func refreshIsDrivenByTheLifetimeNeverAHotLoop() {
        let half = MintedCredentialSource(name: "a", provider: .exec(.init(command: "x", image: "i")))
        #expect(half.refreshDelay(lifetime: .seconds(3600)) == .seconds(1800))
        #expect(half.refreshDelay(lifetime: .seconds(2)) == .seconds(1))
        #expect(half.refreshDelay(lifetime: .zero) == MintedCredentialSource.noLifetimeInterval)
        #expect(half.refreshDelay(lifetime: .seconds(-3600)) == MintedCredentialSource.noLifetimeInterval, "an expiry already past")
        #expect(half.refreshDelay(lifetime: .milliseconds(10)) == MintedCredentialSource.minimumInterval)
        let before = MintedCredentialSource(name: "a", provider: .exec(.init(command: "x", image: "i")), refresh: .before(.seconds(1800)))
        #expect(before.refreshDelay(lifetime: .seconds(12 * 3600)) == .seconds(12 * 3600 - 1800))
        #expect(before.refreshDelay(lifetime: .seconds(600)) == .seconds(300), "a lifetime shorter than `before`: refreshed at half of it")
        #expect(before.refreshDelay(lifetime: .seconds(1800)) == .seconds(900))
        #expect(before.refreshDelay(lifetime: .seconds(1801)) == .seconds(1))
    }

    @Test func mintedSourcesGoThroughThePlannerLikeAnyOther() async throws {
        let p = try Self.load(Self.good)
        let acr = MintedCredential(auths: ["*.azurecr.io": RegistryCredential(username: "u", password: "t1")], lifetime: .seconds(3600))
        let ngc = MintedCredential(auths: ["nvcr.io": RegistryCredential(username: "$oauthtoken", password: "n1")], lifetime: .seconds(3600))
        #expect(MintedCredential.source(["acr", "ngc"], [:]) == nil)
        #expect(MintedCredential.source(["acr", "ngc"], ["acr": acr]) == nil, "never a Secret missing a late credential's registries")
        let source = try #require(MintedCredential.source(["acr", "ngc"], ["acr": acr, "ngc": ngc]))
        #expect(source.key == "credentials:acr,ngc" && source.type == SecretType.dockerConfigJSON)
        let namespaces = [R.ns("team-a"), R.ns("team-b"), R.ns("other")]
        let state = ReplicationState(namespaces: namespaces, sources: [source], serviceAccounts: [R.sa("team-a")])
        let (plan, _, after, again) = await R.converge(p, state)
        #expect(R.writes(plan) == ["create team-a/registry-creds", "patch-serviceaccount team-a/default", "create team-b/registry-creds"])
        let copy = try #require(after.secret("team-a", "registry-creds"))
        let entries = try #require(try PullSecret.entries(of: copy))
        #expect(entries.map(\.key).sorted() == ["*.azurecr.io", "nvcr.io"] && entries.first { $0.key == "nvcr.io" }?.credential.password == "n1")
        #expect(copy.metadata.annotations[ReplicaMarkers.sourceAnnotation] == "credentials:acr,ngc")
        #expect(again.writes.isEmpty, "the same minted content writes nothing")
        // A new token: one update per copy; then the rule narrows: its copy is pruned.
        var next = after
        next.sources = [try #require(MintedCredential.source(["acr", "ngc"], ["acr": acr, "ngc": MintedCredential(auths: ["nvcr.io": RegistryCredential(username: "$oauthtoken", password: "n2")], lifetime: .seconds(3600))]))]
        #expect(R.writes(ReplicationPlanner.plan(p, next)) == ["update team-a/registry-creds", "update team-b/registry-creds"])
        var narrowed = p
        narrowed.rules[0].targets.namespacePatterns = ["team-a"]
        #expect(R.writes(ReplicationPlanner.plan(narrowed, after)) == ["delete team-b/registry-creds"])
        // Not minted yet: reported, and nothing pruned (a copy is retained as onSourceDelete says).
        var unminted = after
        unminted.sources = []
        let waiting = ReplicationPlanner.plan(p, unminted)
        #expect(waiting.writes.isEmpty)
        #expect(R.reports(waiting).contains("/registry-creds: credentials acr,ngc not minted yet"), "\(R.reports(waiting))")
        // Whatever onSourceDelete says: a credential is never "deleted", only not minted; the copies stay.
        var deleting = p
        deleting.rules[0].onSourceDelete = .delete
        let kept = ReplicationPlanner.plan(deleting, unminted)
        #expect(kept.writes.isEmpty, "\(R.writes(kept))")
        #expect(R.reports(kept).contains("team-a/registry-creds: credentials:acr,ngc not minted; replica retained"), "\(R.reports(kept))")
    }
}

private extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
