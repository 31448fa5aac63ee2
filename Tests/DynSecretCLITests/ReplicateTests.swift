import DynSecretCore
import Foundation
import Testing

@Suite struct ReplicateTests {
    static let canary = "CANARY-repl-5f0c2e-never-print"

    /// Whether `text` holds the canary, raw or base64/base64url-encoded at any byte alignment.
    static func leaks(_ text: String) -> Bool {
        if text.contains(canary) { return true }
        for k in 0..<3 {
            let b = Data((String(repeating: "x", count: k) + canary).utf8).base64EncodedString()
            let mid = String(b.dropFirst(4).dropLast(4))
            let url = mid.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            if text.contains(mid) || text.contains(url) { return true }
        }
        return false
    }

    @Test func leakCheckSeesBase64() {
        let value = #"{"auths":{"nvcr.io":{"auth":"\#(Self.canary)"}}}"#
        #expect(Self.leaks("data: " + Data(value.utf8).base64EncodedString()))
        #expect(Self.leaks(Data(("ab" + Self.canary).utf8).base64EncodedString()))
        #expect(!Self.leaks("nothing here"))
    }

    static let cluster = """
        apiVersion: v1
        kind: Namespace
        metadata: {name: inference-platform}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: team-a, labels: {inference.example.com/enabled: "true"}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: team-b, labels: {inference.example.com/enabled: "true"}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: team-c, labels: {inference.example.com/enabled: "true"}}
        status: {phase: Terminating}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: sandbox, labels: {inference.example.com/enabled: "true", inference.example.com/tier: sandbox}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: kube-system, labels: {inference.example.com/enabled: "true"}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: unrelated}
        ---
        apiVersion: v1
        kind: Secret
        metadata:
          name: nvcr-pull
          namespace: inference-platform
          uid: 0f1e2d3c-0000-4000-8000-000000000001
          labels: {app.kubernetes.io/part-of: inference, private: "yes"}
        type: kubernetes.io/dockerconfigjson
        stringData:
          .dockerconfigjson: '{"auths":{"nvcr.io":{"auth":"\(canary)"}}}'
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: registry-creds, namespace: team-b, uid: foreign-uid, resourceVersion: "77"}
        type: kubernetes.io/dockerconfigjson
        data: {.dockerconfigjson: e30=}
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: default, namespace: team-a, uid: sa-a, resourceVersion: "3"}
        imagePullSecrets: [{name: existing}]
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: ignored, namespace: team-a}
        data: {a: b}
        """

    static var repoRoot: URL { repositoryRoot }
    static var examplePolicy: String { repoRoot.appendingPathComponent("policies/inference-pull-secrets.yaml").path }

    func setup() throws -> (TempDir, String) {
        let dir = try TempDir()
        try FileManager.default.createDirectory(at: dir.url.appendingPathComponent("cluster"), withIntermediateDirectories: true)
        _ = try dir.file("cluster/state.yaml", Self.cluster)
        return (dir, dir.url.appendingPathComponent("cluster").path)
    }

    @Test func dryRunText() async throws {
        let (dir, cluster) = try setup()
        _ = dir
        let r = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", cluster, "--dry-run"])
        #expect(r.code == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).prefix(3).joined(separator: " ") }
        #expect(lines == [
            "policy inference-pull-secrets: 1", "ACTION KIND OBJECT",
            "create Secret team-a/registry-creds", "patch-serviceaccount ServiceAccount team-a/default",
            "report Secret team-b/registry-creds", "report Secret team-c/registry-creds",
        ])
        #expect(r.stdout.hasPrefix("policy inference-pull-secrets: 1 create, 0 update, 0 delete, 1 patch-serviceaccount, 2 report\n"))
        #expect(r.stdout.contains("conflict: Secret team-b/registry-creds exists and is not managed by dynsecret; left alone (onConflict: skip)"))
        #expect(r.stdout.contains("namespace team-c is terminating; skipped"))
        #expect(!Self.leaks(r.stdout) && !Self.leaks(r.stderr))
    }

    @Test func dryRunJSON() async throws {
        let (dir, cluster) = try setup()
        _ = dir
        let r = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", cluster, "--dry-run", "-o", "json"])
        #expect(r.code == 0, "\(r.stderr)")
        let json = try JSONParser.parse(Array(r.stdout.utf8))
        let actions = try #require(json["actions"]?.arrayValue)
        #expect(actions.map { "\($0["action"]!.stringValue!) \($0["namespace"]!.stringValue!)/\($0["name"]!.stringValue!)" } == [
            "create team-a/registry-creds", "patch-serviceaccount team-a/default", "report team-b/registry-creds", "report team-c/registry-creds",
        ])
        // No content hash in plan output: an unsalted hash of a low-entropy secret is brute-forceable.
        #expect(actions[0]["contentHash"] == nil && actions[0]["type"]?.stringValue == "kubernetes.io/dockerconfigjson")
        #expect(!r.stdout.contains("sha256:"))
        #expect(actions[1]["addImagePullSecrets"] == .array([.string("registry-creds")]))
        #expect(actions[1]["precondition"]?["resourceVersion"]?.stringValue == "3")
        #expect(json["summary"]?["create"] == .number("1"))
        #expect(!Self.leaks(r.stdout))
    }

    @Test func rendersReplicasForGitOps() async throws {
        let (dir, cluster) = try setup()
        let out = dir.url.appendingPathComponent("rendered").path
        // What an earlier run killed mid-write left behind (replica data in a temporary file): cleaned by this run.
        try FileManager.default.createDirectory(atPath: out + "/team-a", withIntermediateDirectories: true)
        let leftover = out + "/team-a/.secret-registry-creds.yaml.tmp-0123456789abcdef"
        #expect(FileManager.default.createFile(atPath: leftover, contents: Data(Self.canary.utf8), attributes: [.posixPermissions: 0o600]))
        let r = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", cluster, "--out", out])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "wrote 1 Secret(s) and 1 ServiceAccount(s) under \(out)\n")
        #expect(r.stderr.contains("warning: team-b/registry-creds: conflict"))
        #expect(!Self.leaks(r.stdout) && !Self.leaks(r.stderr))
        let secretPath = out + "/team-a/secret-registry-creds.yaml"
        let attrs = try FileManager.default.attributesOfItem(atPath: secretPath)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let doc = try ManifestReader.read(Array(try Data(contentsOf: URL(fileURLWithPath: secretPath))), source: secretPath)
        let (replica, unknown) = try Secret.decode(doc[0].value)
        #expect(unknown.isEmpty)
        #expect(replica.type == SecretType.dockerConfigJSON)
        #expect(String(decoding: replica.data[".dockerconfigjson"]!, as: UTF8.self) == #"{"auths":{"nvcr.io":{"auth":"\#(Self.canary)"}}}"#)
        #expect(replica.metadata.labels == ["app.kubernetes.io/part-of": "inference", "app.kubernetes.io/managed-by": "dynsecret", "dynsecret.io/replica": "true"])
        #expect(replica.metadata.annotations["dynsecret.io/source"] == "inference-platform/nvcr-pull")
        #expect(replica.metadata.annotations["dynsecret.io/source-uid"] == "0f1e2d3c-0000-4000-8000-000000000001")
        #expect(replica.metadata.annotations["dynsecret.io/rule"] == "inference-pull-secrets/registry")
        #expect(replica.metadata.annotations["dynsecret.io/content-hash"] == ReplicaContentHash.of(replica))
        #expect(replica.metadata.uid == nil && replica.metadata.resourceVersion == nil)
        let saText = try String(contentsOfFile: out + "/team-a/serviceaccount-default.yaml", encoding: .utf8)
        let sa = try ServiceAccount.decode(try ManifestReader.read(Array(saText.utf8), source: "sa")[0].value).serviceAccount
        #expect(sa.imagePullSecrets == ["existing", "registry-creds"])
        #expect(sa.metadata.uid == nil)
        let written = try FileManager.default.subpathsOfDirectory(atPath: out).sorted()
        #expect(written == ["team-a", "team-a/secret-registry-creds.yaml", "team-a/serviceaccount-default.yaml"])
    }

    /// The rendered files are what a GitOps flow feeds to kustomize: the installed kubectl's kustomize reads them back unchanged.
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed"))
    func kustomizeReadsRenderedManifests() async throws {
        let (dir, cluster) = try setup()
        let out = dir.url.appendingPathComponent("rendered").path
        let r = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", cluster, "--out", out])
        #expect(r.code == 0, "\(r.stderr)")
        _ = try dir.file("rendered/kustomization.yaml", "resources:\n- team-a/secret-registry-creds.yaml\n- team-a/serviceaccount-default.yaml\n")
        let k = try runProcess(kubectlPath!, ["kustomize", out])
        #expect(k.code == 0, "\(k.stderr)")
        let docs = try ManifestReader.read(Array(k.stdout.utf8), source: "kustomize")
        #expect(docs.count == 2)
        let fromKustomize = try docs.compactMap { d -> Secret? in d.value["kind"]?.stringValue == "Secret" ? try Secret.decode(d.value).secret : nil }
        let rendered = try Secret.decode(try ManifestReader.read(Array(try Data(contentsOf: URL(fileURLWithPath: out + "/team-a/secret-registry-creds.yaml"))), source: "f")[0].value).secret
        #expect(fromKustomize == [rendered])
        let sa = try docs.compactMap { d -> ServiceAccount? in d.value["kind"]?.stringValue == "ServiceAccount" ? try ServiceAccount.decode(d.value).serviceAccount : nil }
        #expect(sa.first?.imagePullSecrets == ["existing", "registry-creds"])
    }

    /// Namespaces read from manifests carry kubernetes.io/metadata.name, as the API server sets it.
    @Test func manifestNamespacesHaveMetadataNameLabel() async throws {
        let (dir, cluster) = try setup()
        let policy = try dir.file("by-name.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: by-name}
            spec:
              rules:
              - name: r
                source: {namespace: inference-platform, name: nvcr-pull}
                targets:
                  namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [team-a, implicit]}]}
            """)
        _ = try dir.file("cluster/implicit.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: implicit}\n")
        let r = await dynsecret(["replicate", "--policy", policy, "--from-manifests", cluster, "--dry-run", "-o", "json"])
        #expect(r.code == 0, "\(r.stderr)")
        let json = try JSONParser.parse(Array(r.stdout.utf8))
        let actions = try #require(json["actions"]?.arrayValue)
        #expect(actions.map { "\($0["action"]!.stringValue!) \($0["namespace"]!.stringValue!)/\($0["name"]!.stringValue!)" } == [
            "create implicit/nvcr-pull", "create team-a/nvcr-pull",
        ])
        #expect(!Self.leaks(r.stdout) && !Self.leaks(r.stderr))
    }

    @Test func badPolicyExits2AndWritesNothing() async throws {
        let (dir, cluster) = try setup()
        let text = try String(contentsOfFile: Self.examplePolicy, encoding: .utf8).replacingOccurrences(of: "mode: sync ", with: "mode: mirror ")
        let policy = try dir.file("bad.yaml", text)
        let out = dir.url.appendingPathComponent("rendered").path
        let r = await dynsecret(["replicate", "--policy", policy, "--from-manifests", cluster, "--out", out])
        #expect(r.code == 2)
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("mode: mirror") }! + 1
        #expect(r.stderr == "error: \(policy): line \(line): spec.rules[0].mode: unsupported value \"mirror\": supported values: \"sync\", \"create-only\"\n")
        #expect(r.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(arguments: [
        ("unknown", "    prune: true", "    prune: true\n    colour: red", "spec.rules[0].colour: unknown field"),
        ("selector", "          operator: NotIn", "          operator: Near", "spec.rules[0].targets.namespaceSelector.matchExpressions[0].operator: not a valid selector operator"),
        ("rename", "      name: nvcr-pull", "      selector: {matchLabels: {a: b}}", "spec.rules[0].targetName: targetName needs a single-source rule"),
    ])
    func badPolicyMessages(_ name: String, _ old: String, _ new: String, _ expected: String) async throws {
        let (dir, cluster) = try setup()
        let text = try String(contentsOfFile: Self.examplePolicy, encoding: .utf8)
        #expect(text.contains(old))
        let policy = try dir.file("\(name).yaml", text.replacingOccurrences(of: old, with: new))
        let r = await dynsecret(["replicate", "--policy", policy, "--from-manifests", cluster, "--dry-run"])
        #expect(r.code == 2)
        #expect(r.stderr.hasPrefix("error: \(policy): line "), "\(r.stderr)")
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stdout.isEmpty)
    }

    @Test func badManifestNamesFileAndDocument() async throws {
        let (dir, cluster) = try setup()
        _ = try dir.file("cluster/broken.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {k: \"not base64!\"}\n")
        let r = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", cluster, "--dry-run"])
        #expect(r.code == 2)
        #expect(r.stderr == "error: \(cluster)/broken.yaml: document 1 (line 1): data[k]: invalid base64 value\n")
    }

    @Test func usageErrors() async throws {
        let noConfig = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--dry-run", "--kubeconfig", "/nonexistent/kubeconfig"])
        #expect(noConfig.code == 2 && noConfig.stderr.hasPrefix("error: ") && noConfig.stderr.contains("/nonexistent/kubeconfig"))
        let both = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", "/tmp", "--dry-run", "--out", "/tmp/x"])
        #expect(both.code == 2 && both.stderr.contains("exactly one of --dry-run, --out DIR or --once"))
        let onceFromManifests = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--from-manifests", "/tmp", "--once"])
        #expect(onceFromManifests.code == 2)
        let badConcurrency = await dynsecret(["replicate", "--policy", Self.examplePolicy, "--once", "--concurrency", "0"])
        #expect(badConcurrency.code == 2)
        let missing = await dynsecret(["replicate", "--policy", "/nonexistent/p.yaml", "--from-manifests", "/tmp", "--dry-run"])
        #expect(missing.code == 2 && missing.stderr == "error: --policy /nonexistent/p.yaml: no such file or directory\n")
    }

    @Test func examplePoliciesAreValid() throws {
        let dir = Self.repoRoot.appendingPathComponent("policies")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 3)
        for f in files {
            let path = dir.appendingPathComponent(f).path
            let p = try ReplicationPolicy.load(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path)
            #expect(!p.rules.isEmpty)
        }
    }

    static let python3: String? = onPath("python3")

    /// The start of a Python script that checks files against the policy schema: imports, and `v`, a validator of
    /// the schema under `root` (the script's first argument).
    static let schemaPrologue = """
        import json, sys, glob
        try:
            import jsonschema, yaml
        except ImportError:
            print("python3 lacks jsonschema or yaml (pip install jsonschema pyyaml)"); sys.exit(1)
        root = sys.argv[1]
        v = jsonschema.Draft202012Validator(json.load(open(root + "/policies/schema/replicationpolicy.schema.json")))

        """

    /// The JSON Schema accepts the examples and rejects what the loader rejects (Python's jsonschema, installed by .ci/run).
    @Test(.enabled(if: python3 != nil, "python3 is not installed"))
    func schemaAgreesWithExamples() throws {
        let script = Self.schemaPrologue + """
            for f in sorted(glob.glob(root + "/policies/*.yaml")):
                errs = [e.message for e in v.iter_errors(yaml.safe_load(open(f)))]
                if errs: print("invalid", f, errs); sys.exit(1)
            doc = yaml.safe_load(open(root + "/policies/inference-pull-secrets.yaml"))
            for mutate in ("mode", "colour", "rename", "empty"):
                d = json.loads(json.dumps(doc)); r = d["spec"]["rules"][0]
                if mutate == "mode": r["mode"] = "mirror"
                if mutate == "colour": r["colour"] = "red"
                if mutate == "rename": r["source"] = {"namespace": "x", "selector": {}}
                if mutate == "empty": r["source"] = {"namespace": "x", "selector": {}}; r.pop("targetName", None)
                if v.is_valid(d): print("accepted", mutate); sys.exit(1)
            cloud = yaml.safe_load(open(root + "/policies/cloud-pull-secrets.yaml"))
            for mutate in ("no-region", "two-providers", "no-provider", "short-id", "no-registries"):
                d = json.loads(json.dumps(cloud)); c = d["spec"]["credentials"]
                if mutate == "no-region": c[0]["ecr"].pop("region")
                if mutate == "two-providers": c[0]["google"] = {"registries": ["gcr.io"]}
                if mutate == "no-provider": c[0].pop("ecr")
                if mutate == "short-id": c[0]["ecr"]["registryIds"] = ["12345"]
                if mutate == "no-registries": c[1]["google"]["registries"] = []
                if v.is_valid(d): print("accepted", mutate); sys.exit(1)
            print("ok")
            """
        let r = try runProcess(Self.python3!, ["-c", script, Self.repoRoot.path])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout == "ok\n")
    }
}
