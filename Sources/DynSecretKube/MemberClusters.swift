public import DynSecretCore
internal import Foundation

/// A member cluster of a policy as the hub reaches it: its name (a `contextPattern` entry yields one per matching
/// context, named after it), the names rules may target it by, and its client configuration or why there is none.
public struct ResolvedMember: Sendable {
    public var name: String
    /// The policy entry's name when it differs (a `contextPattern` entry).
    public var aliases: [String]
    /// Namespaced mode: the only namespaces the hub may act in (empty: the whole cluster).
    public var namespaces: [String] = []
    public var config: Result<KubeConfig, KubeConfigError>
    /// The hub Secret its kubeconfig is read from (`kubeconfigSecret` entries), as namespace, name and key.
    public var kubeconfigSecret: [String]?
    /// The kubeconfig's bytes as read from that Secret (to tell its rotation from a resync).
    public var kubeconfigData: [UInt8]?
    /// True when an earlier entry already yielded this name: the hub must not run it a second time.
    public var isDuplicate = false

    /// The scope its plans are made in, by hub `hub`.
    public func scope(hub: String?) -> ReplicationScope { ReplicationScope(cluster: name, hub: hub, aliases: aliases) }
}

extension KubeClient {
    /// A member's kubeconfig held in Secret `namespace/name` under `key`, read through this (the hub's) client: the
    /// configuration, and the kubeconfig's bytes (to tell a rotation from a resync).
    public func memberKubeconfig(_ namespace: String, _ name: String, _ key: String) async -> (config: Result<KubeConfig, KubeConfigError>, data: [UInt8]?) {
        let secret: Secret
        do throws(KubeError) {
            secret = try await get(Secret.self, namespace: namespace, name: name)
        } catch {
            return (.failure(KubeConfigError("kubeconfig Secret \(namespace)/\(name) key \(key): \(error.message)")), nil)
        }
        return Self.memberKubeconfig(in: secret, namespace, name, key)
    }

    /// The member kubeconfig that Secret `namespace/name` (as read or watched) holds under `key`.
    public static func memberKubeconfig(in secret: Secret, _ namespace: String, _ name: String, _ key: String)
        -> (config: Result<KubeConfig, KubeConfigError>, data: [UInt8]?) {
        let what = "kubeconfig Secret \(namespace)/\(name) key \(key)"
        guard let bytes = secret.mergedData[key] else { return (.failure(KubeConfigError("\(what): no such key")), nil) }
        do throws(KubeConfigError) {
            return (.success(try KubeConfigLoader.fromData(bytes, source: what)), bytes)
        } catch {
            return (.failure(error), bytes)
        }
    }

    /// Resolves the member clusters of `policy`: a kubeconfig Secret is read from this (the hub's) client, contexts
    /// come from the member kubeconfig file. A member that cannot be resolved is returned with its error, never
    /// thrown, so one broken member never stops the others; two entries yielding one name are an error on the second.
    public func memberClusters(of policy: ReplicationPolicy, memberKubeconfig: String?, environment: [String: String] = [:]) async -> [ResolvedMember] {
        var out: [ResolvedMember] = []
        var contexts: Result<[String], KubeConfigError>?
        func contextNames() -> Result<[String], KubeConfigError> {
            if let contexts { return contexts }
            let r: Result<[String], KubeConfigError>
            if let memberKubeconfig {
                do throws(KubeConfigError) { r = .success(try KubeConfigLoader.contextNames([memberKubeconfig])) } catch { r = .failure(error) }
            } else {
                r = .failure(KubeConfigError("no --member-kubeconfig given, so its contexts are unknown"))
            }
            contexts = r
            return r
        }
        func fromContext(_ c: String) -> Result<KubeConfig, KubeConfigError> {
            guard let memberKubeconfig else { return .failure(KubeConfigError("context \(KubeNames.goQuote(c)): no --member-kubeconfig given")) }
            do throws(KubeConfigError) { return .success(try KubeConfigLoader.fromFiles([memberKubeconfig], context: c, environment: environment)) } catch { return .failure(error) }
        }
        for member in policy.clusters {
            switch member.access {
            case .kubeconfigSecret(let ns, let name, let key):
                let (config, data) = await self.memberKubeconfig(ns, name, key)
                out.append(ResolvedMember(name: member.name, aliases: [], config: config, kubeconfigSecret: [ns, name, key], kubeconfigData: data))
            case .context(let c):
                out.append(ResolvedMember(name: member.name, aliases: [], config: fromContext(c)))
            case .contextPattern(let p):
                switch contextNames() {
                case .failure(let e):
                    out.append(ResolvedMember(name: member.name, aliases: [], config: .failure(KubeConfigError("contextPattern \(KubeNames.goQuote(p)): \(e.message)"))))
                case .success(let names):
                    for c in names where NamespaceGlob.matches(p, c) {
                        out.append(ResolvedMember(name: c, aliases: [member.name], config: fromContext(c)))
                    }
                }
            }
        }
        for i in out.indices {
            out[i].namespaces = policy.clusters.first { $0.name == out[i].name || out[i].aliases.contains($0.name) }?.namespaces ?? []
        }
        var seen: Set<String> = [ReplicationScope.localCluster]
        for i in out.indices where !seen.insert(out[i].name).inserted {
            out[i].isDuplicate = true
            out[i].config = .failure(KubeConfigError("cluster name \(KubeNames.goQuote(out[i].name)) is given twice (a context matched by a pattern and named elsewhere?)"))
        }
        return out
    }
}
