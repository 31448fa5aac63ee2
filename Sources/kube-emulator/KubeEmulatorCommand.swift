import ArgumentParser
import Foundation
import KubeEmulator

/// `kube-emulator`: a Kubernetes API server emulator for tests and development.
@main
struct KubeEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kube-emulator",
        abstract: "Kubernetes API server emulator (Namespaces, Secrets, ConfigMaps, ServiceAccounts, Events, Leases) for tests; loopback only."
    )

    @Option(help: "Port to listen on (0 picks a free port).")
    var port: Int = 0

    @Option(help: "Loopback address to listen on (127.0.0.1 or ::1).")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("kubeconfig-out"), help: "Write a kubeconfig for clients here (mode 0600).")
    var kubeconfigOut: String?

    @Option(name: .customLong("token"), help: "Accepted bearer token: TOKEN, USER:TOKEN or USER:TOKEN=VERB,...[/RESOURCE,...]. Repeatable; the first goes into the kubeconfig.")
    var tokens: [String] = []

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain for TLS.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key for TLS.")
    var tlsKey: String?

    @Option(name: .customLong("ca-cert"), help: "CA certificate written into the kubeconfig as certificate-authority-data.")
    var caCert: String?

    @Option(name: .customLong("error-rate"), help: "Fraction of API requests answered 500.")
    var errorRate: Double = 0

    @Option(name: .customLong("throttle-rate"), help: "Fraction of API requests answered 429 with Retry-After.")
    var throttleRate: Double = 0

    @Option(name: .customLong("retry-after"), help: "Retry-After seconds on 429 answers.")
    var retryAfter: Int = 1

    @Option(name: .customLong("latency-ms"), help: "Latency added to every request.")
    var latencyMs: Int = 0

    @Option(name: .customLong("drop-watch-after"), help: "Close each watch after this many events (0 = never).")
    var dropWatchAfter: Int = 0

    @Option(name: .customLong("drop-connection-rate"), help: "Fraction of requests whose connection is closed unanswered.")
    var dropConnectionRate: Double = 0

    @Option(name: .customLong("watch-window"), help: "Change events retained for watches; older versions get 410 Expired.")
    var watchWindow: Int = 50_000

    @Option(name: .customLong("counters-file"), help: "Write the request counters (JSON) to this file every second and at exit.")
    var countersFile: String?

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        var options = EmulatorOptions()
        options.host = host
        options.port = port
        for (i, spec) in tokens.enumerated() {
            guard let grant = TokenGrant(spec: spec, index: i + 1) else {
                throw ValidationError("--token: expected TOKEN, USER:TOKEN or USER:TOKEN=VERBS[/RESOURCES]")
            }
            options.tokens.append(grant)
        }
        options.tlsCertificatePath = tlsCert
        options.tlsKeyPath = tlsKey
        options.faults.errorRate = errorRate
        options.faults.throttleRate = throttleRate
        options.faults.retryAfterSeconds = retryAfter
        options.faults.latencyMilliseconds = latencyMs
        options.faults.dropWatchAfterEvents = dropWatchAfter
        options.faults.dropConnectionRate = dropConnectionRate
        options.watchWindow = watchWindow

        let emulator: KubeEmulator
        do { emulator = try await KubeEmulator.start(options) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let out = kubeconfigOut {
            var ca: [UInt8]?
            if let caCert {
                guard let data = FileManager.default.contents(atPath: caCert) else {
                    FileHandle.standardError.write(Data("error: --ca-cert: cannot read \(caCert)\n".utf8))
                    throw ExitCode(2)
                }
                ca = Array(data)
            }
            let text = emulator.kubeconfig(token: options.tokens.first?.token, caPEM: ca)
            do { try writePrivate(Array(text.utf8), to: out) } catch {
                FileHandle.standardError.write(Data("error: --kubeconfig-out: cannot write \(out): \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        FileHandle.standardOutput.write(Data("kube-emulator ready \(emulator.url)\n".utf8))
        while true {
            try await Task.sleep(for: .seconds(1))
            if let countersFile {
                let c = emulator.counters()
                let json = "{" + c.keys.sorted().map { "\"\($0)\":\(c[$0]!)" }.joined(separator: ",") + "}\n"
                try? writePrivate(Array(json.utf8), to: countersFile)
            }
        }
    }
}

/// Writes `bytes` to `path` with mode 0600: temp file, fsync, rename, fsync of the directory.
func writePrivate(_ bytes: [UInt8], to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let tmp = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count }
    ok = ok && fsync(fd) == 0
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        unlink(tmp)
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

