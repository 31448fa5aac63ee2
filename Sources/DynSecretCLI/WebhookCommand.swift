internal import ArgumentParser
internal import DynSecretAdmission
internal import DynSecretController
internal import DynSecretCore
internal import DynSecretCrypto
internal import DynSecretKube
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `dynsecret webhook`: the validating admission webhook.
struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook",
        abstract: "Run the admission webhook: warn about or refuse workloads whose private images no usable pull secret covers.",
        discussion: """
            Serves admission.k8s.io/v1 AdmissionReview at https://ADDR/validate for Pods and the pod templates of \
            Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and CronJobs (image \
            coverage, as 'dynsecret validate' decides it), Secrets of the pull-secret types (payload rules) and \
            ServiceAccounts (their imagePullSecrets must exist and decode). Same rule ids as 'validate'.

            Mode per namespace: warn (default: allowed, findings as warnings kubectl prints) or enforce (label \
            dynsecret.io/admission=enforce, or the policy's enforceNamespaces: error findings are refused with 403). \
            kube-system, kube-public, kube-node-lease and the webhook's own namespace are never reviewed.

            State comes from informers (pull-secret Secrets by type, ServiceAccounts, Namespaces); until they have \
            synced, requests are allowed with a warning. The certificate files are reloaded when they change; or, \
            with --self-signed-ca, the webhook keeps its own CA and serving certificate in a Secret of its namespace, \
            sets the caBundle of --webhook-configuration and renews both before they expire (no cert-manager). \
            /healthz, /readyz and /metrics are served on the same address. See docs/admission.md.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Address to serve HTTPS on.", valueName: "host:port"))
    var addr = "0.0.0.0:8443"

    @Option(name: .customLong("tls-cert-file"), help: ArgumentHelp("Serving certificate (PEM, chain allowed); reloaded when it changes.", valueName: "file"))
    var tlsCertFile: String?

    @Option(name: .customLong("tls-private-key-file"), help: ArgumentHelp("Private key of the serving certificate (PEM).", valueName: "file"))
    var tlsPrivateKeyFile: String?

    @Flag(name: .customLong("self-signed-ca"), help: "Keep a CA and serving certificate in a Secret of the webhook's namespace and inject the caBundle (instead of --tls-cert-file).")
    var selfSignedCA = false

    @Option(name: .customLong("self-signed-secret"), help: ArgumentHelp("With --self-signed-ca: the Secret holding CA and certificate.", valueName: "name"))
    var selfSignedSecret = "dynsecret-webhook-ca"

    @Option(name: .customLong("webhook-configuration"), help: ArgumentHelp("With --self-signed-ca: the ValidatingWebhookConfiguration whose caBundle is set.", valueName: "name"))
    var webhookConfiguration = "dynsecret-webhook"

    @Option(name: .long, help: ArgumentHelp("With --self-signed-ca: the Service in front of the webhook (its DNS names go in the certificate).", valueName: "name"))
    var service = "dynsecret-webhook"

    @Option(name: .customLong("certificate-host"), help: ArgumentHelp("With --self-signed-ca: another DNS name or IP address for the certificate; repeatable.", valueName: "name"))
    var certificateHosts: [String] = []

    @Option(name: .customLong("ca-validity"), help: ArgumentHelp("With --self-signed-ca: lifetime of the CA, renewed with a third left.", valueName: "duration"))
    var caValidity = "43800h"

    @Option(name: .customLong("certificate-validity"), help: ArgumentHelp("With --self-signed-ca: lifetime of the serving certificate, renewed with a third left.", valueName: "duration"))
    var certificateValidity = "8760h"

    @Option(name: .customLong("private-registry"), help: ArgumentHelp("Registry that needs credentials (kubelet key syntax: nvcr.io, *.example.com, host:port/path); repeatable.", valueName: "glob"))
    var privateRegistries: [String] = []

    @Option(name: .long, help: ArgumentHelp("AdmissionPolicy file: privateRegistries, mode, enforceNamespaces, excludeNamespaces.", valueName: "file"))
    var policy: String?

    @Option(name: [.customShort("n"), .long], help: ArgumentHelp("The webhook's own namespace, never reviewed (default: POD_NAMESPACE).", valueName: "ns"))
    var namespace: String?

    @Option(name: .customLong("certificate-poll"), help: ArgumentHelp("How often the certificate files (default 2s) or the self-signed Secret (default 1m) are checked.", valueName: "duration"))
    var certificatePoll: String?

    @Option(name: .customLong("log-format"), help: "Log format: text or json.")
    var logFormat: ControllerCommand.LogFormat = .text

    @Option(name: .customLong("log-level"), help: "Log level: debug, info, warning, error.")
    var logLevel = "info"

    @OptionGroup var connection: ClusterConnection

    func validate() throws {
        if selfSignedCA {
            guard tlsCertFile == nil, tlsPrivateKeyFile == nil else { throw ValidationError("--self-signed-ca and --tls-cert-file/--tls-private-key-file exclude each other") }
            for host in certificateHosts where !CertificateIssuer.isDNSName(host) && !CertificateIssuer.isIPAddress(host) {
                throw ValidationError("--certificate-host \(host): not a DNS name or IP address")
            }
            guard CertificateIssuer.isDNSName(service), !service.contains(".") else { throw ValidationError("--service \(service): not a Service name") }
        } else if tlsCertFile == nil || tlsPrivateKeyFile == nil {
            throw ValidationError("--tls-cert-file and --tls-private-key-file are required (or --self-signed-ca)")
        }
        for glob in privateRegistries where CredentialKeyring.normalize(glob) == nil {
            throw ValidationError("--private-registry \(glob): not a registry host[:port][/path] glob")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
    }

    func run() async throws {
        let env = CommandIO.current.environment
        guard let address = try ControllerCommand.address(addr, "--addr") else { throw CLIError("--addr: a webhook address is required") }
        var admission = AdmissionPolicy()
        if let policy {
            let bytes = try Input.read(policy, what: "--policy", kind: .policy)
            do {
                let docs = try ManifestReader.read(bytes, source: policy)
                guard docs.count == 1, let doc = docs.first else { throw CLIError("\(policy): expected one AdmissionPolicy document") }
                admission = try AdmissionPolicy.decode(doc.value)
            } catch let error as ManifestError {
                throw CLIError("\(policy): \(error.field.map { $0 + ": " } ?? "")\(error.message)")
            }
        }
        admission.privateRegistries += privateRegistries
        if let own = namespace ?? env["POD_NAMESPACE"].flatMap({ $0.isEmpty ? nil : $0 }) { admission.excludeNamespaces.insert(own) }

        let format = logFormat
        var logger = Logger(label: "dynsecret.webhook") { label in
            switch format {
            case .json: JSONLogHandler(label: label)
            case .text: StreamLogHandler.standardError(label: label)
            }
        }
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let client = try connection.client(namespace: nil, maxConcurrentRequests: 8)
        var cfg: WebhookConfiguration
        if selfSignedCA {
            guard let own = namespace ?? env["POD_NAMESPACE"].flatMap({ $0.isEmpty ? nil : $0 }) else {
                throw CLIError("--self-signed-ca: the webhook's namespace is needed for its Secret (--namespace or POD_NAMESPACE)")
            }
            var settings = SelfSignedSettings(namespace: own)
            settings.secretName = selfSignedSecret
            settings.webhookConfiguration = webhookConfiguration
            settings.dnsNames = SelfSignedSettings.serviceNames(service, namespace: own) + certificateHosts.filter { !CertificateIssuer.isIPAddress($0) }
            settings.ipAddresses = certificateHosts.filter { CertificateIssuer.isIPAddress($0) }
            settings.caValidity = try ControllerCommand.duration(caValidity, "--ca-validity")
            settings.certificateValidity = try ControllerCommand.duration(certificateValidity, "--certificate-validity")
            guard settings.certificateValidity <= settings.caValidity else { throw CLIError("--certificate-validity must not be longer than --ca-validity") }
            cfg = WebhookConfiguration(selfSigned: settings)
        } else {
            cfg = WebhookConfiguration(certificatePath: tlsCertFile ?? "", keyPath: tlsPrivateKeyFile ?? "")
        }
        cfg.host = address.host
        cfg.port = address.port
        cfg.policy = admission
        cfg.certificatePollInterval = try ControllerCommand.duration(certificatePoll ?? (selfSignedCA ? "1m" : "2s"), "--certificate-poll")
        let webhook: Webhook
        do {
            webhook = try Webhook(client: client, configuration: cfg, logger: logger)
        } catch {
            throw CLIError(error.message)
        }
        let group = ServiceGroup(services: [webhook], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        do {
            try await group.run()
        } catch {
            throw CLIError("webhook: \(error)", exitCode: ExitStatus.findings)
        }
    }
}
