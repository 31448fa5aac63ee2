import Foundation

/// A generated `SecretList` of `count` dockerconfigjson Secrets, as `kubectl get secrets -A -o json` prints it.
func generateSecretList(count: Int, to path: String) throws {
    var out = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n"
    let registries = ["nvcr.io", "ghcr.io", "registry.inference.example.com", "https://index.docker.io/v1/", "quay.io",
                      "123456789012.dkr.ecr.us-east-1.amazonaws.com", "registry.example.com:5000/team"]
    for i in 0..<count {
        var auths: [String] = []
        for r in 0..<(1 + i % 3) {
            let key = registries[(i + r * 3) % registries.count]
            let auth = Data("user\(i):token-\(i)-\(r)-abcdefghijklmnop".utf8).base64EncodedString()
            auths.append("\"\(key)\":{\"username\":\"user\(i)\",\"password\":\"token-\(i)-\(r)-abcdefghijklmnop\",\"auth\":\"\(auth)\"}")
        }
        let payload = Data("{\"auths\":{\(auths.joined(separator: ","))}}".utf8).base64EncodedString()
        let ns = "team-\(i % 250)"
        out += """
                {
                    "apiVersion": "v1",
                    "data": {
                        ".dockerconfigjson": "\(payload)"
                    },
                    "kind": "Secret",
                    "metadata": {
                        "creationTimestamp": "2026-11-\(10 + i % 18)T12:00:00Z",
                        "labels": {
                            "app.kubernetes.io/managed-by": "dynsecret"
                        },
                        "name": "pull-\(i)",
                        "namespace": "\(ns)",
                        "resourceVersion": "\(100000 + i)",
                        "uid": "\(UUID().uuidString.lowercased())"
                    },
                    "type": "kubernetes.io/dockerconfigjson"
                }\(i == count - 1 ? "" : ",")

        """
    }
    out += "    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
    try Data(out.utf8).write(to: URL(fileURLWithPath: path))
}

/// A YAML stream of `count` documents: pull secrets, ServiceAccounts and Deployments in many namespaces.
func generateManifestStream(count: Int, to path: String) throws {
    var out = ""
    for i in 0..<count {
        let ns = "team-\((i / 4) % 100)"
        switch i % 4 {
        case 0:
            let payload = Data("{\"auths\":{\"nvcr.io\":{\"auth\":\"\(Data("u\(i):p\(i)".utf8).base64EncodedString())\"}}}".utf8).base64EncodedString()
            out += "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull-\(i / 4)\n  namespace: \(ns)\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: \(payload)\n"
        case 1:
            out += "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-\(i / 4)\n  namespace: \(ns)\nimagePullSecrets:\n- name: pull-\(i / 4)\n"
        case 2:
            out += """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: app-\(i / 4)
                  namespace: \(ns)
                spec:
                  replicas: 2
                  selector:
                    matchLabels: {app: app-\(i / 4)}
                  template:
                    metadata:
                      labels: {app: app-\(i / 4)}
                    spec:
                      serviceAccountName: sa-\(i / 4)
                      containers:
                      - name: main
                        image: nvcr.io/nvidia/tritonserver:24.08-py3
                        ports: [{containerPort: 8000}]
                      - name: sidecar
                        image: nvcr.io/nvidia/metrics:1.0

                """
        default:
            out += "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg-\(i / 4)\n  namespace: \(ns)\ndata:\n  key: value-\(i)\n"
        }
        out += "---\n"
    }
    try Data(out.utf8).write(to: URL(fileURLWithPath: path))
}

func benchIndex(_ o: Options, count: Int) throws {
    guard let dynsecret = resolve(o.dynsecret) else { print("dynsecret binary not found at \(o.dynsecret)"); exit(2) }
    guard let jq = resolve("jq") else { print("jq not found: the peer of this benchmark is jq (apt-get install jq)"); exit(2) }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let list = dir.appendingPathComponent("secrets.json").path
    try generateSecretList(count: count, to: list)
    let size = (try FileManager.default.attributesOfItem(atPath: list)[.size] as? Int) ?? 0

    let ours = ["index", "-f", list, "-o", "json"]
    let filter = #".items[] | select(.type == "kubernetes.io/dockerconfigjson") | [.metadata.namespace, .metadata.name, (.data[".dockerconfigjson"] | @base64d | fromjson | .auths | keys[])] | @tsv"#
    let peer = ["-r", filter, list]
    _ = try timed(dynsecret, ours, stdin: nil)
    _ = try timed(jq, peer, stdin: nil)
    let (a, b) = try alternate(runs: o.runs, { try timed(dynsecret, ours, stdin: nil) }, { try timed(jq, peer, stdin: nil) })
    let rssA = peakRSS(dynsecret, ours, stdin: nil)
    let rssB = peakRSS(jq, peer, stdin: nil)
    let medA = percentile(a, 0.5)
    let medB = percentile(b, 0.5)
    let mib = Double(size) / 1_048_576
    print("benchmark: index over a SecretList of \(count) dockerconfigjson Secrets (\(String(format: "%.1f", mib)) MiB), \(o.runs) alternating runs each")
    print("  dynsecret index -o json  median \(ms(medA))  (\(String(format: "%.0f", Double(count) / medA)) Secrets/s)  peak RSS \(rssA.map { "\($0 / 1024) MiB (\(String(format: "%.2f", Double($0) / 1024 / mib))x input)" } ?? "n/a")")
    print("  jq (same fields)         median \(ms(medB))  peak RSS \(rssB.map { "\($0 / 1024) MiB" } ?? "n/a")")
    print(String(format: "  ratio dynsecret/jq (median wall time): %.3f  (goal: <= 0.5; peak RSS goal: <= 2x input)", medA / medB))
}

func benchValidate(_ o: Options, count: Int) throws {
    guard let dynsecret = resolve(o.dynsecret) else { print("dynsecret binary not found at \(o.dynsecret)"); exit(2) }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let stream = dir.appendingPathComponent("manifests.yaml").path
    try generateManifestStream(count: count, to: stream)
    let args = ["validate", "-f", stream, "--private-registry", "nvcr.io", "-o", "json"]
    _ = try? timed(dynsecret, args, stdin: nil)
    var times: [Double] = []
    for _ in 0..<max(1, o.runs) { times.append(try timed(dynsecret, args, stdin: nil)) }
    let med = percentile(times, 0.5)
    let rss = peakRSS(dynsecret, args, stdin: nil)
    print("benchmark: validate over a \(count)-document YAML stream, \(times.count) runs")
    print("  median \(ms(med))  → \(String(format: "%.0f", Double(count) / med)) documents/s  peak RSS \(rss.map { "\($0 / 1024) MiB" } ?? "n/a")")
}
