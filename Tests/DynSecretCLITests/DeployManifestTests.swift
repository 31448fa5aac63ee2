import DynSecretCore
import DynSecretKube
import KubeEmulator
import Foundation
import Testing

/// The installed checkov (pip), if any; `.ci/run` installs it.
let checkovPath: String? = onPath("checkov")

/// The controller's manifests in `deploy/`: they render, validate, grant exactly the RBAC the controller needs, keep the
/// restricted Pod Security Standard, and fail no checkov check that `deploy/README.md` does not justify.
@Suite(.heavy) struct DeployManifestTests {
    static let deploy = repositoryRoot.appendingPathComponent("deploy")
    static let namespace = "dynsecret-system"

    /// `kubectl kustomize DIR` as text.
    static func render(_ dir: URL) throws -> String {
        let r = try runProcess(kubectlPath!, ["kustomize", dir.path])
        #expect(r.code == 0, "kubectl kustomize \(dir.path): \(r.stderr)")
        return r.stdout
    }

    /// The base with the persistent-store component, through an overlay in a temporary directory (kustomize refuses
    /// absolute paths to bases, so the overlay names them relative to itself).
    static func renderPersistent() throws -> String { try renderOverlay(components: ["persistent-store"]) }

    /// The base with `components` (names under deploy/components), through an overlay in a temporary directory.
    static func renderOverlay(components: [String]) throws -> String {
        let tmp = try TempDir()
        let up = String(repeating: "../", count: tmp.url.resolvingSymlinksInPath().pathComponents.count - 1)
        let rel = up + deploy.resolvingSymlinksInPath().path.dropFirst()
        _ = try tmp.file("kustomization.yaml", """
            resources: [\(rel)/base]
            components: [\(components.map { "\(rel)/components/\($0)" }.joined(separator: ", "))]
            """, mode: 0o644)
        return try render(tmp.url)
    }

    /// The rules of the rendered ClusterRole and Role, as the emulator enforces them for one user (resource names
    /// are not narrowed: the emulator's rules are per verb and resource).
    static func emulatorRules(_ objects: [JSONValue]) throws -> [TokenGrant.Rule] {
        var out: [TokenGrant.Rule] = []
        for kind in ["ClusterRole", "Role"] {
            for rule in try object(objects, kind: kind)["rules"]?.arrayValue ?? [] {
                out.append(TokenGrant.Rule(verbs: Set(strings(rule["verbs"])), resources: Set(strings(rule["resources"]))))
            }
        }
        return out
    }

    static func objects(_ text: String) throws -> [JSONValue] {
        try ManifestReader.read(Array(text.utf8), source: "kustomize").map(\.value)
    }

    static func object(_ objects: [JSONValue], kind: String) throws -> JSONValue {
        let found = objects.filter { $0["kind"]?.stringValue == kind }
        try #require(found.count == 1, "expected one \(kind), found \(found.count)")
        return found[0]
    }

    static func strings(_ v: JSONValue?) -> [String] { v?.arrayValue?.compactMap(\.stringValue) ?? [] }

    /// A scalar's text: the string, or the number as written.
    static func scalar(_ v: JSONValue?) -> String? {
        switch v {
        case .string(let s)?: s
        case .number(let n)?: n
        default: nil
        }
    }

    // MARK: Rendering and validation

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func baseRendersEveryObjectInItsNamespace() throws {
        let objects = try Self.objects(try Self.render(Self.deploy.appendingPathComponent("base")))
        let kinds = objects.compactMap { $0["kind"]?.stringValue }.sorted()
        #expect(kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Namespace", "NetworkPolicy",
                          "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"])
        for o in objects where !["Namespace", "ClusterRole", "ClusterRoleBinding"].contains(o["kind"]?.stringValue ?? "") {
            #expect(o["metadata"]?["namespace"]?.stringValue == Self.namespace, "\(o["kind"]?.stringValue ?? "")")
        }
        let ns = try Self.object(objects, kind: "Namespace")
        #expect(ns["metadata"]?["name"]?.stringValue == Self.namespace)
        #expect(ns["metadata"]?["labels"]?["pod-security.kubernetes.io/enforce"]?.stringValue == "restricted")
    }

    /// The existing pre-deploy hook kustomization is untouched by the new base.
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/hooks with kustomize is skipped"))
    func hooksStillRender() throws {
        let objects = try Self.objects(try Self.render(Self.deploy.appendingPathComponent("hooks")))
        #expect(objects.contains { $0["kind"]?.stringValue == "Job" })
    }

    /// Clean at the strictest level: only notes (the image's anonymous pull from ghcr.io) are allowed.
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func renderedBasePassesValidate() async throws {
        let rendered = try Self.render(Self.deploy.appendingPathComponent("base"))
        let r = await dynsecret(["validate", "-f", "-", "--fail-on", "warning", "-o", "json"], stdin: rendered)
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        let findings = try JSONParser.parse(r.stdout)["findings"]?.arrayValue ?? []
        #expect(findings.allSatisfy { $0["severity"]?.stringValue == "note" }, "\(r.stdout)")
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"))
    func persistentStoreRendersAndValidates() async throws {
        let rendered = try Self.renderPersistent()
        let r = await dynsecret(["validate", "-f", "-", "--fail-on", "warning"], stdin: rendered)
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
    }

    // MARK: RBAC

    /// One (apiGroup, resource, verb, resourceName) grant per line, "*" for an unrestricted name.
    static func grants(_ role: JSONValue) -> Set<String> {
        var out = Set<String>()
        for rule in role["rules"]?.arrayValue ?? [] {
            let names = strings(rule["resourceNames"])
            for g in strings(rule["apiGroups"]) {
                for r in strings(rule["resources"]) {
                    for v in strings(rule["verbs"]) {
                        for n in names.isEmpty ? ["(any)"] : names { out.insert("\(g)/\(r) \(v) \(n)") }
                    }
                }
            }
        }
        return out
    }

    /// Every string anywhere in a value (keys and values).
    static func allStrings(_ v: JSONValue) -> [String] {
        switch v {
        case .string(let s): [s]
        case .array(let a): a.flatMap(allStrings)
        case .object(let o): o.members.flatMap { [$0.key] + allStrings($0.value) }
        default: []
        }
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func rbacGrantsExactlyWhatTheControllerNeeds() throws {
        let objects = try Self.objects(try Self.render(Self.deploy.appendingPathComponent("base")))
        let clusterRole = try Self.object(objects, kind: "ClusterRole")
        let role = try Self.object(objects, kind: "Role")
        for r in [clusterRole, role] {
            #expect(!Self.allStrings(r).contains { $0.contains("*") }, "a wildcard in \(r["kind"]?.stringValue ?? "")")
            #expect(r["aggregationRule"] == nil)
            #expect(r["rules"]?.arrayValue?.allSatisfy { $0["nonResourceURLs"] == nil } == true)
        }
        #expect(Self.grants(clusterRole) == [
            "/namespaces get (any)", "/namespaces list (any)", "/namespaces watch (any)",
            "/secrets get (any)", "/secrets list (any)", "/secrets watch (any)",
            "/secrets create (any)", "/secrets patch (any)", "/secrets delete (any)",
            "/serviceaccounts get (any)", "/serviceaccounts list (any)", "/serviceaccounts watch (any)",
            "/serviceaccounts patch (any)",
            "/events create (any)", "/events patch (any)",
        ])
        #expect(Self.grants(role) == [
            "coordination.k8s.io/leases get dynsecret-controller",
            "coordination.k8s.io/leases update dynsecret-controller",
            "coordination.k8s.io/leases create (any)",
        ])
        #expect(role["metadata"]?["namespace"]?.stringValue == Self.namespace)
        // The ConfigMap component adds exactly the ConfigMap verbs, nothing else.
        let withConfigMaps = try Self.object(try Self.objects(try Self.renderOverlay(components: ["configmaps"])), kind: "ClusterRole")
        #expect(Self.grants(withConfigMaps).subtracting(Self.grants(clusterRole)) == [
            "/configmaps get (any)", "/configmaps list (any)", "/configmaps watch (any)",
            "/configmaps create (any)", "/configmaps patch (any)", "/configmaps delete (any)",
        ])
        #expect(Self.grants(clusterRole).isSubset(of: Self.grants(withConfigMaps)))

        // Each binding gives its role to the controller's ServiceAccount only.
        let sa = try Self.object(objects, kind: "ServiceAccount")
        #expect(sa["automountServiceAccountToken"] == .bool(false), "the token is mounted by the pod template only")
        for (kind, roleKind, roleName) in [("ClusterRoleBinding", "ClusterRole", clusterRole["metadata"]?["name"]),
                                           ("RoleBinding", "Role", role["metadata"]?["name"])] {
            let b = try Self.object(objects, kind: kind)
            #expect(b["roleRef"]?["kind"]?.stringValue == roleKind)
            #expect(b["roleRef"]?["name"] == roleName)
            let subjects = b["subjects"]?.arrayValue ?? []
            #expect(subjects.count == 1)
            #expect(subjects.first?["kind"]?.stringValue == "ServiceAccount")
            #expect(subjects.first?["name"] == sa["metadata"]?["name"])
            #expect(subjects.first?["namespace"]?.stringValue == Self.namespace)
        }
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"))
    func webhookComponentRenders() throws {
        let objects = try Self.objects(try Self.renderOverlay(components: ["webhook"]))
        func named(_ kind: String) throws -> JSONValue {
            try #require(objects.first { $0["kind"]?.stringValue == kind && $0["metadata"]?["name"]?.stringValue == "dynsecret-webhook" }, "\(kind)")
        }
        let vwc = try named("ValidatingWebhookConfiguration")
        let hook = try #require(vwc["webhooks"]?.arrayValue?.first)
        #expect(hook["failurePolicy"]?.stringValue == "Ignore" && hook["sideEffects"]?.stringValue == "None")
        #expect(Self.strings(hook["admissionReviewVersions"]) == ["v1"] && hook["timeoutSeconds"] == .number("5"))
        let excluded = Self.strings(hook["namespaceSelector"]?["matchExpressions"]?.arrayValue?.first?["values"])
        #expect(["kube-system", "kube-public", "kube-node-lease", "dynsecret-system"].allSatisfy(excluded.contains))
        #expect(hook["clientConfig"]?["service"]?["namespace"]?.stringValue == "dynsecret-system")
        let role = try named("ClusterRole")
        for rule in role["rules"]?.arrayValue ?? [] { #expect(Set(Self.strings(rule["verbs"])) == ["list", "watch"]) }
        #expect(Set((role["rules"]?.arrayValue ?? []).flatMap { Self.strings($0["resources"]) }) == ["secrets", "serviceaccounts", "namespaces"])
        #expect(try named("Deployment")["spec"]?["replicas"] == .number("2"))
        #expect(try named("Deployment")["metadata"]?["namespace"]?.stringValue == "dynsecret-system")
        for kind in ["Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount", "ClusterRoleBinding"] { _ = try named(kind) }
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"))
    func webhookSelfSignedComponentRenders() throws {
        let objects = try Self.objects(try Self.renderOverlay(components: ["webhook", "webhook-self-signed"]))
        let deployment = try #require(objects.first { $0["kind"]?.stringValue == "Deployment" && $0["metadata"]?["name"]?.stringValue == "dynsecret-webhook" })
        let pod = try #require(deployment["spec"]?["template"]?["spec"])
        let args = Self.strings(pod["containers"]?.arrayValue?.first?["args"])
        #expect(args.contains("--self-signed-ca") && !args.contains { $0.hasPrefix("--tls-") }, "\(args)")
        #expect(pod["volumes"] == nil && pod["containers"]?.arrayValue?.first?["volumeMounts"] == nil)
        let vwc = try #require(objects.first { $0["kind"]?.stringValue == "ValidatingWebhookConfiguration" })
        #expect(vwc["metadata"]?["annotations"]?["cert-manager.io/inject-ca-from"] == nil)
        // Exactly the rights it needs: its own Secret and its own configuration by name; no Secret create (the Secret
        // is shipped, empty and annotated).
        let shipped = try #require(objects.first { $0["kind"]?.stringValue == "Secret" && $0["metadata"]?["name"]?.stringValue == "dynsecret-webhook-ca" })
        #expect(shipped["data"] == nil && shipped["metadata"]?["annotations"]?["dynsecret.io/self-signed-ca"]?.stringValue == "v1")
        let rules = Self.webhookRules(objects)
        #expect(Set(rules.map { "\($0.namespace ?? "*") \($0.resource) \($0.names.sorted()) \($0.verbs.sorted())" }) == [
            "* secrets [] [\"list\", \"watch\"]", "* serviceaccounts [] [\"list\", \"watch\"]", "* namespaces [] [\"list\", \"watch\"]",
            "dynsecret-system secrets [\"dynsecret-webhook-ca\"] [\"get\", \"update\"]",
            "* validatingwebhookconfigurations [\"dynsecret-webhook\"] [\"get\", \"update\"]",
        ])
    }

    /// Every rule bound to the webhook's ServiceAccount, one per resource: namespace (nil for a ClusterRole), names.
    static func webhookRules(_ objects: [JSONValue]) -> [(namespace: String?, resource: String, names: [String], verbs: [String])] {
        var out: [(namespace: String?, resource: String, names: [String], verbs: [String])] = []
        for o in objects where ["ClusterRole", "Role"].contains(o["kind"]?.stringValue ?? "") && (o["metadata"]?["name"]?.stringValue ?? "").hasPrefix("dynsecret-webhook") {
            let ns = o["kind"]?.stringValue == "Role" ? o["metadata"]?["namespace"]?.stringValue : nil
            for rule in o["rules"]?.arrayValue ?? [] {
                for r in strings(rule["resources"]) { out.append((ns, r, strings(rule["resourceNames"]), strings(rule["verbs"]))) }
            }
        }
        return out
    }

    /// The webhook's rendered rules as the emulator enforces them (resource names are not narrowed there).
    static func webhookEmulatorRules(components: [String]) throws -> [TokenGrant.Rule] {
        webhookRules(try objects(try renderOverlay(components: components))).map {
            TokenGrant.Rule(verbs: Set($0.verbs), resources: [$0.resource], namespaces: $0.namespace.map { [$0] })
        }
    }

    // MARK: The pod

    /// The Deployment's pod template, and the StatefulSet's when the persistent-store component is used.
    static func podTemplates() throws -> [(String, JSONValue)] {
        let base = try objects(try render(deploy.appendingPathComponent("base")))
        let persistent = try objects(try renderPersistent())
        return [("base", try object(base, kind: "Deployment")), ("persistent-store", try object(persistent, kind: "StatefulSet"))]
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"))
    func podFollowsTheRestrictedPodSecurityStandard() throws {
        let webhook = try Self.objects(try Self.renderOverlay(components: ["webhook"])).first {
            $0["kind"]?.stringValue == "Deployment" && $0["metadata"]?["name"]?.stringValue == "dynsecret-webhook"
        }
        for (variant, workload) in try Self.podTemplates() + [("webhook", try #require(webhook))] {
            let pod = try #require(workload["spec"]?["template"]?["spec"], "\(variant)")
            let psc = pod["securityContext"]
            #expect(psc?["runAsNonRoot"] == .bool(true), "\(variant)")
            #expect(psc?["runAsUser"] == .number("65532"), "\(variant)")
            #expect(psc?["runAsGroup"] == .number("65532"), "\(variant)")
            #expect(psc?["fsGroup"] == .number("65532"), "\(variant)")
            #expect(psc?["seccompProfile"]?["type"]?.stringValue == "RuntimeDefault", "\(variant)")
            for field in ["hostNetwork", "hostPID", "hostIPC"] { #expect(pod[field] == nil || pod[field] == .bool(false), "\(variant) \(field)") }
            #expect((pod["volumes"]?.arrayValue ?? []).allSatisfy { $0["hostPath"] == nil }, "\(variant)")
            let containers = (pod["containers"]?.arrayValue ?? []) + (pod["initContainers"]?.arrayValue ?? [])
            try #require(!containers.isEmpty)
            for c in containers {
                let name = "\(variant) \(c["name"]?.stringValue ?? "")"
                let sc = c["securityContext"]
                #expect(sc?["allowPrivilegeEscalation"] == .bool(false), "\(name)")
                #expect(sc?["readOnlyRootFilesystem"] == .bool(true), "\(name)")
                #expect(Self.strings(sc?["capabilities"]?["drop"]) == ["ALL"], "\(name)")
                #expect(sc?["capabilities"]?["add"] == nil, "\(name)")
                #expect(sc?["privileged"] == nil || sc?["privileged"] == .bool(false), "\(name)")
                // A container-level override may only repeat the pod's non-root identity.
                #expect(sc?["runAsNonRoot"] == nil || sc?["runAsNonRoot"] == .bool(true), "\(name)")
                #expect(sc?["runAsUser"] == nil || sc?["runAsUser"] == .number("65532"), "\(name)")
                #expect(sc?["seccompProfile"] == nil || sc?["seccompProfile"]?["type"]?.stringValue == "RuntimeDefault", "\(name)")
                for kind in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] { #expect(c["resources"]?[kind]?[resource] != nil, "\(name) \(kind).\(resource)") }
                }
                #expect(c["livenessProbe"]?["httpGet"]?["path"]?.stringValue == "/healthz", "\(name)")
                #expect(c["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/readyz", "\(name)")
            }
        }
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"))
    func podRunsTheControllerAsSpecified() throws {
        for (variant, workload) in try Self.podTemplates() {
            #expect(workload["spec"]?["replicas"] == .number("2"), "\(variant)")
            let pod = try #require(workload["spec"]?["template"]?["spec"])
            #expect(pod["automountServiceAccountToken"] == .bool(true), "\(variant): the controller needs its token")
            #expect(pod["serviceAccountName"]?.stringValue == "dynsecret-controller")
            let c = try #require(pod["containers"]?.arrayValue?.first)
            #expect(c["image"]?.stringValue == "ghcr.io/dynsecret/dynsecret:0.1.0")
            let args = Self.strings(c["args"])
            #expect(args.first == "controller")
            for arg in ["--policy=/etc/dynsecret/policy/policy.yaml", "--store=/var/lib/dynsecret/store",
                        "--keyring=/etc/dynsecret/keyring/keyring.yaml", "--leader-elect",
                        "--health-addr=0.0.0.0:8081", "--metrics-addr=0.0.0.0:8080"] {
                #expect(args.contains(arg), "\(variant): \(arg)")
            }
            let env = c["env"]?.arrayValue ?? []
            #expect(env.contains { $0["name"]?.stringValue == "POD_NAMESPACE" && $0["valueFrom"]?["fieldRef"]?["fieldPath"]?.stringValue == "metadata.namespace" })
            let ports = Set((c["ports"]?.arrayValue ?? []).compactMap { $0["containerPort"] })
            #expect(ports == [.number("8080"), .number("8081")])

            let mounts = c["volumeMounts"]?.arrayValue ?? []
            func mount(_ path: String) -> JSONValue? { mounts.first { $0["mountPath"]?.stringValue == path } }
            // Directory mounts: a subPath mount never sees the kubelet's ..data swap, so hot reload would break.
            #expect(mounts.allSatisfy { $0["subPath"] == nil && $0["subPathExpr"] == nil }, "\(variant)")
            #expect(mount("/etc/dynsecret/policy")?["readOnly"] == .bool(true))
            #expect(mount("/etc/dynsecret/keyring")?["readOnly"] == .bool(true))
            #expect(mount("/var/lib/dynsecret/store") != nil)
            let volumes = pod["volumes"]?.arrayValue ?? []
            func volume(_ name: JSONValue?) -> JSONValue? { volumes.first { $0["name"] == name } }
            let policy = volume(mount("/etc/dynsecret/policy")?["name"])
            #expect(policy?["configMap"]?["name"]?.stringValue == "dynsecret-policy")
            let keyring = volume(mount("/etc/dynsecret/keyring")?["name"])
            #expect(keyring?["secret"]?["secretName"]?.stringValue == "dynsecret-keyring")
            #expect(keyring?["secret"]?["defaultMode"] == .number(String(0o440)))
            if variant == "base" {
                #expect(volume(mount("/var/lib/dynsecret/store")?["name"])?["emptyDir"] != nil)
            } else {
                let claims = workload["spec"]?["volumeClaimTemplates"]?.arrayValue ?? []
                #expect(volume(mount("/var/lib/dynsecret/store")?["name"]) == nil, "the claim template provides the store")
                #expect(claims.compactMap { $0["metadata"]?["name"] } == [mount("/var/lib/dynsecret/store")?["name"]])
            }
        }
    }

    /// The component changes the workload's kind and store only: the pod template is otherwise the base's.
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"))
    func persistentStoreKeepsTheBasePodTemplate() throws {
        let templates = try Self.podTemplates()
        func withoutStoreVolume(_ w: JSONValue) -> [JSONValue] {
            (w["spec"]?["template"]?["spec"]?["volumes"]?.arrayValue ?? []).filter { $0["name"]?.stringValue != "store" }
        }
        let base = templates[0].1["spec"]?["template"]?["spec"]?.objectValue
        let persistent = templates[1].1["spec"]?["template"]?["spec"]?.objectValue
        var b = try #require(base), p = try #require(persistent)
        b["volumes"] = nil
        p["volumes"] = nil
        #expect(b == p)
        #expect(withoutStoreVolume(templates[0].1) == withoutStoreVolume(templates[1].1))
        let objects = try Self.objects(try Self.renderPersistent())
        #expect(!objects.contains { $0["kind"]?.stringValue == "Deployment" })
    }

    // MARK: Policy, keyring, network, disruption

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func policyConfigMapHoldsAValidPolicy() throws {
        let objects = try Self.objects(try Self.render(Self.deploy.appendingPathComponent("base")))
        let cm = try Self.object(objects, kind: "ConfigMap")
        #expect(cm["metadata"]?["name"]?.stringValue == "dynsecret-policy", "no hash suffix: the controller hot-reloads the file")
        let text = try #require(cm["data"]?["policy.yaml"]?.stringValue)
        let policy = try ReplicationPolicy.load(Array(text.utf8), source: "dynsecret-policy/policy.yaml")
        #expect(!policy.rules.isEmpty)
    }

    @Test(.enabled(if: ReplicateTests.python3 != nil, "python3 is not installed"))
    func policyFileMatchesTheSchema() throws {
        let script = ReplicateTests.schemaPrologue + """
            errs = [e.message for e in v.iter_errors(yaml.safe_load(open(root + "/deploy/base/policy.yaml")))]
            print("invalid", errs) if errs else print("ok")
            """
        let r = try runProcess(ReplicateTests.python3!, ["-c", script, repositoryRoot.path])
        #expect(r.code == 0 && r.stdout == "ok\n", "\(r.stdout) \(r.stderr)")
    }

    /// The committed keyring Secret is an empty placeholder, and nothing in deploy/ holds a keyring.
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func keyringSecretHoldsNoKeyMaterial() throws {
        let objects = try Self.objects(try Self.render(Self.deploy.appendingPathComponent("base")))
        let secret = try Self.object(objects, kind: "Secret")
        #expect(secret["metadata"]?["name"]?.stringValue == "dynsecret-keyring")
        #expect(secret["data"] == nil && secret["stringData"] == nil)
        let files = FileManager.default.enumerator(atPath: Self.deploy.path)?.compactMap { $0 as? String } ?? []
        for f in files where f.hasSuffix(".yaml") || f.hasSuffix(".yml") {
            let text = try String(contentsOf: Self.deploy.appendingPathComponent(f), encoding: .utf8)
            #expect(!text.contains("kind: Keyring"), "\(f) holds a keyring")
        }
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func networkPolicyAndDisruptionBudgetCoverThePods() throws {
        let objects = try Self.objects(try Self.render(Self.deploy.appendingPathComponent("base")))
        let podLabels = try Self.object(objects, kind: "Deployment")["spec"]?["template"]?["metadata"]?["labels"]?.objectValue
        func selects(_ selector: JSONValue?) -> Bool {
            guard let match = selector?["matchLabels"]?.objectValue, !match.members.isEmpty else { return false }
            return match.members.allSatisfy { podLabels?[$0.key] == $0.value }
        }
        let np = try Self.object(objects, kind: "NetworkPolicy")
        #expect(selects(np["spec"]?["podSelector"]))
        #expect(Set(Self.strings(np["spec"]?["policyTypes"])) == ["Ingress", "Egress"])
        func ports(_ rules: JSONValue?) -> Set<String> {
            Set((rules?.arrayValue ?? []).flatMap { $0["ports"]?.arrayValue ?? [] }.map {
                "\($0["protocol"]?.stringValue ?? "TCP")/\(Self.scalar($0["port"]) ?? "any")"
            })
        }
        #expect(ports(np["spec"]?["ingress"]) == ["TCP/8080", "TCP/8081"])
        #expect(ports(np["spec"]?["egress"]) == ["TCP/443", "TCP/6443", "UDP/53", "TCP/53"])
        let pdb = try Self.object(objects, kind: "PodDisruptionBudget")
        #expect(selects(pdb["spec"]?["selector"]))
        #expect(pdb["spec"]?["maxUnavailable"] == .number("1"))
        let svc = try Self.object(objects, kind: "Service")
        let selector = svc["spec"]?["selector"]?.objectValue
        #expect(selector?.members.allSatisfy { podLabels?[$0.key] == $0.value } == true)
        #expect(svc["spec"]?["ports"]?.arrayValue?.compactMap { $0["port"] } == [.number("8080")])
    }

    // MARK: checkov

    /// The check ids of the exceptions table in deploy/README.md (section "checkov exceptions").
    static func documentedExceptions() throws -> Set<String> {
        let readme = try String(contentsOf: deploy.appendingPathComponent("README.md"), encoding: .utf8)
        var inSection = false
        var ids = Set<String>()
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { inSection = line.lowercased().contains("checkov exceptions") }
            guard inSection, line.hasPrefix("| `") else { continue }
            let cell = line.dropFirst(3).prefix { $0 != "`" }
            if cell.hasPrefix("CKV") { ids.insert(String(cell)) }
        }
        return ids
    }

    @Test func exceptionsTableIsThere() throws {
        let ids = try Self.documentedExceptions()
        #expect(!ids.isEmpty)
        #expect(ids.allSatisfy { $0.hasPrefix("CKV_K8S_") || $0.hasPrefix("CKV2_K8S_") })
    }

    @Test(.enabled(if: kubectlPath != nil && checkovPath != nil,
                   "checkov or kubectl is not installed (.ci/run installs checkov with pip): the checkov scan of deploy/ is skipped"),
          arguments: ["base", "persistent-store"])
    func checkovFailsOnlyDocumentedChecks(variant: String) throws {
        let rendered = variant == "base" ? try Self.render(Self.deploy.appendingPathComponent("base")) : try Self.renderPersistent()
        let tmp = try TempDir()
        let file = try tmp.file("rendered.yaml", rendered, mode: 0o644)
        // --skip-download: no call to the vendor's API (the checks are local); the exit code is 1 when any check fails.
        let r = try runProcess(checkovPath!, ["-f", file, "--framework", "kubernetes", "-o", "json", "--skip-download", "--quiet"])
        let parsed = try JSONParser.parse(r.stdout)
        let reports = parsed.arrayValue ?? [parsed]
        let report = try #require(reports.first { $0["check_type"]?.stringValue == "kubernetes" }, "\(r.stdout.prefix(500)) \(r.stderr.prefix(500))")
        let summary = report["summary"]
        // Guard against a vacuous pass: every object was parsed and checks actually ran.
        #expect(summary?["parsing_errors"] == .number("0"))
        #expect((Int(Self.scalar(summary?["resource_count"]) ?? "") ?? 0) >= 12, "\(String(describing: summary))")
        #expect((Int(Self.scalar(summary?["passed"]) ?? "") ?? 0) > 50, "\(String(describing: summary))")
        let failed = Set((report["results"]?["failed_checks"]?.arrayValue ?? []).compactMap { $0["check_id"]?.stringValue })
        let documented = try Self.documentedExceptions()
        #expect(failed.subtracting(documented).isEmpty,
                "\(variant): checkov failed checks not justified in deploy/README.md: \(failed.subtracting(documented).sorted())")
    }
}

/// The rendered Deployment's command line runs: the controller starts with exactly the manifest's arguments (paths
/// mapped to a temporary directory, addresses to loopback), reads a keyring laid out as the kubelet lays out a
/// Secret volume (`..data` symbolic link, mode 0440), the base's policy, leads, serves /readyz, and stops on SIGTERM.
@Suite struct DeployedArgumentsTests {
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/base with kustomize is skipped"))
    func theDeploymentsArgumentsRunTheController() async throws {
        let objects = try DeployManifestTests.objects(try DeployManifestTests.render(DeployManifestTests.deploy.appendingPathComponent("base")))
        let deployment = try DeployManifestTests.object(objects, kind: "Deployment")
        let container = try #require(deployment["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first)
        var args = DeployManifestTests.strings(container["args"])
        try #require(args.first == "controller")
        args.removeFirst()

        let e = try await KubeEmulator.start()
        defer { Task { await e.stop() } }
        let dir = try TempDir()
        // A Secret volume: keyring.yaml -> ..data/keyring.yaml, ..data -> ..2026_11_26, the file 0440.
        let volume = dir.url.appendingPathComponent("keyring")
        let stamp = volume.appendingPathComponent("..2026_11_26_00_00_00.000000000")
        try FileManager.default.createDirectory(at: stamp, withIntermediateDirectories: true)
        let generated = dir.url.appendingPathComponent("generated.yaml").path
        #expect(await dynsecret(["keys", "generate", "--keyring", generated]).code == 0)
        try FileManager.default.copyItem(atPath: generated, toPath: stamp.appendingPathComponent("keyring.yaml").path)
        #expect(chmod(stamp.appendingPathComponent("keyring.yaml").path, 0o440) == 0)
        try FileManager.default.createSymbolicLink(atPath: volume.appendingPathComponent("..data").path, withDestinationPath: stamp.lastPathComponent)
        try FileManager.default.createSymbolicLink(atPath: volume.appendingPathComponent("keyring.yaml").path, withDestinationPath: "..data/keyring.yaml")

        let policy = DeployManifestTests.deploy.appendingPathComponent("base/policy.yaml").path
        let map = [
            "/etc/dynsecret/policy/policy.yaml": policy,
            "/etc/dynsecret/keyring/keyring.yaml": volume.appendingPathComponent("keyring.yaml").path,
            "/var/lib/dynsecret/store": dir.url.appendingPathComponent("store").path,
            "0.0.0.0:8081": "127.0.0.1:0", "0.0.0.0:8080": "127.0.0.1:0",
        ]
        args = args.map { a in
            guard let eq = a.firstIndex(of: "="), let v = map[String(a[a.index(after: eq)...])] else { return map[a] ?? a }
            return String(a[...eq]) + v
        }
        #expect(args.contains { $0.hasPrefix("--keyring=") && $0.contains(dir.url.path) }, "the manifest's keyring path changed: \(args)")
        let kubeconfig = try dir.file("kubeconfig", e.kubeconfig())
        _ = try await KubeClient(config: KubeConfig(server: e.url)).create(.namespaces, Fixtures.namespace("dynsecret-system"))
        let ctl = try ControllerProcess(args + ["--kubeconfig", kubeconfig], log: dir.url.appendingPathComponent("controller.log").path,
                                        environment: ["POD_NAMESPACE": "dynsecret-system", "POD_NAME": "dynsecret-controller-0"])
        let health = try await ctl.port("health")
        #expect(await waitFor(.seconds(20)) { ctl.log.contains("became leader") } != nil, "\(ctl.log.suffix(2000))")
        #expect(await waitFor(.seconds(20)) { (try? httpGet("http://127.0.0.1:\(health)/readyz").status) == 200 } != nil)
        let lease = try await KubeClient(config: KubeConfig(server: e.url)).get(Lease.self, namespace: "dynsecret-system", name: "dynsecret-controller")
        #expect(lease.holderIdentity?.hasPrefix("dynsecret-controller-0_") == true)
        let stopped = await ctl.stop(SIGTERM)
        #expect(stopped.status == 0, "\(ctl.log.suffix(2000))")
    }

    // MARK: Cloud identity components

    struct CloudComponent: Sendable, CustomTestStringConvertible {
        var name: String
        var annotation: String?
        var egress: [String]
        var testDescription: String { name }
    }

    static let cloudComponents: [CloudComponent] = [
        CloudComponent(name: "aws-irsa", annotation: "eks.amazonaws.com/role-arn", egress: []),
        CloudComponent(name: "aws-pod-identity", annotation: nil, egress: ["169.254.170.23/32:80", "fd00:ec2::23/128:80"]),
        CloudComponent(name: "gke-workload-identity", annotation: "iam.gke.io/gcp-service-account", egress: ["169.254.169.254/32:80", "169.254.169.252/32:988"]),
    ]

    static func egressRules(_ objects: [JSONValue]) throws -> [String] {
        var out: [String] = []
        for rule in try DeployManifestTests.object(objects, kind: "NetworkPolicy")["spec"]?["egress"]?.arrayValue ?? [] {
            var ports: [String] = []
            for p in rule["ports"]?.arrayValue ?? [] { if case .number(let n)? = p["port"] { ports.append(n) } }
            for to in rule["to"]?.arrayValue ?? [] {
                guard let cidr = to["ipBlock"]?["cidr"]?.stringValue else { continue }
                for port in ports { out.append(cidr + ":" + port) }
            }
        }
        return out
    }

    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/ with kustomize is skipped"), arguments: Self.cloudComponents)
    func cloudIdentityComponentsChangeOnlyTheServiceAccountAndEgress(_ component: CloudComponent) throws {
        let base = try DeployManifestTests.objects(try DeployManifestTests.render(DeployManifestTests.deploy.appendingPathComponent("base")))
        let rendered = try DeployManifestTests.objects(try DeployManifestTests.renderOverlay(components: [component.name]))
        let sa = try DeployManifestTests.object(rendered, kind: "ServiceAccount")
        let annotations: [String] = sa["metadata"]?["annotations"]?.objectValue?.members.map { $0.key } ?? []
        #expect(annotations == (component.annotation.map { [$0] } ?? []), "\(annotations)")
        #expect(try Self.egressRules(rendered) == (try Self.egressRules(base)) + component.egress)
        // Everything else is the base as it is.
        let others: (JSONValue) -> Bool = { !["ServiceAccount", "NetworkPolicy"].contains($0["kind"]?.stringValue ?? "") }
        #expect(rendered.filter(others) == base.filter(others))
    }
}
