import DynSecretCore
import Foundation
import KubeEmulator
import Testing

/// Endless and oversized inputs end in exit 2 with the input's name, not in an abort, under a memory limit
/// (`RLIMIT_AS`, set with util-linux `prlimit`); directory walks read regular files only.
@Suite struct BoundedInputTests {
    /// 1 GiB of address space: several times what any of these commands needs, far less than an unbounded read.
    static let addressSpace = String(1 << 30)

    static func limited(_ args: [String], stdin: String? = nil) throws -> RunResult {
        guard let bin = dynsecretBinary else { throw TestFailure("the dynsecret binary was not found next to the tests") }
        return try runProcess("/usr/bin/prlimit", ["--as=\(addressSpace)", "--", bin] + args, stdin: stdin, timeout: .seconds(60))
    }

    @Test(arguments: [
        (["validate", "-f", "/dev/zero"], "larger than 128 MiB, the most dynsecret reads for a manifest file"),
        (["index", "-f", "/dev/zero"], "/dev/zero: larger than 128 MiB"),
        (["create-registry", "x", "--server", "r.example", "--username", "u", "--password-file", "/dev/zero"], "--password-file /dev/zero: larger than 64 KiB"),
        (["replicate", "--policy", "/dev/zero", "--from-manifests", "/tmp", "--dry-run"], "--policy /dev/zero: larger than 1 MiB"),
        (["replicate", "--policy", "/dev/null", "--from-manifests", "/dev/zero", "--dry-run"], ""),
        (["create-registry", "--merge-into", "/dev/zero", "--server", "r.example", "--username", "u", "--password", "p"], "--merge-into /dev/zero: larger than 4 MiB"),
    ])
    func devZeroIsRefusedNotAborted(_ args: [String], _ message: String) throws {
        let r = try Self.limited(args)
        #expect(r.code == 2, "exit \(r.code): \(r.stderr.suffix(500))")
        if !message.isEmpty { #expect((r.stdout + r.stderr).contains(message), "\(r.stdout)\(r.stderr.suffix(500))") }
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test func endlessRecordIsRefused() async throws {
        let dir = try TempDir()
        let keyring = dir.path("keyring.yaml")
        #expect(await dynsecret(["keys", "generate", "--keyring", keyring]).code == 0)
        let r = try Self.limited(["decrypt", "/dev/zero", "--keyring", keyring])
        #expect(r.code == 2 && r.stderr.contains("record /dev/zero: larger than 4 MiB"), "exit \(r.code): \(r.stderr.suffix(500))")
    }

    @Test func fromManifestsProblemsNameTheOption() async throws {
        let dir = try TempDir()
        let policy = try dir.file("p.yaml", "apiVersion: dynsecret.io/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    source: {namespace: a, name: s}\n    targets: {namespaces: [b]}\n")
        let r = await dynsecret(["replicate", "--policy", policy, "--from-manifests", "/nonexistent-dir", "--dry-run"])
        #expect(r.code == 2 && r.stderr.contains("--from-manifests /nonexistent-dir: no such file or directory"), "\(r.stderr)")
    }

    @Test func endlessStandardInputIsRefused() throws {
        guard let bin = dynsecretBinary else { throw TestFailure("no dynsecret binary") }
        let r = try runProcess("/bin/sh", ["-c", "prlimit --as=\(Self.addressSpace) -- \(bin) create-registry x --server r.example --username u --password-stdin < /dev/zero"])
        #expect(r.code == 2, "exit \(r.code): \(r.stderr.suffix(500))")
        #expect(r.stderr.contains("--password-stdin (standard input): larger than 64 KiB"), "\(r.stderr)")
    }

    /// A FIFO (which would block the walk), a symbolic link loop and a socket-like entry inside a directory given to
    /// `-f` are skipped and reported; the regular file is validated.
    @Test func directoryWalkReadsRegularFilesOnly() throws {
        let dir = try TempDir()
        _ = try dir.file("ok.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: ns}\ntype: Opaque\ndata: {k: dmFsdWU=}\n")
        #expect(mkfifo(dir.path("pipe.yaml"), 0o600) == 0)
        #expect(symlink(dir.path("loop-b.yaml"), dir.path("loop-a.yaml")) == 0)
        #expect(symlink(dir.path("loop-a.yaml"), dir.path("loop-b.yaml")) == 0)
        let r = try Self.limited(["validate", "-f", dir.url.path])
        #expect(r.code == 0, "exit \(r.code): \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("1 object"), "\(r.stdout)")
        #expect(r.stderr.contains("skipped pipe.yaml: a FIFO, not a regular file"), "\(r.stderr)")
        #expect(r.stderr.contains("skipped loop-a.yaml: too many levels of symbolic links"), "\(r.stderr)")
    }

    @Test func pathProblemsAreWordedByCause() throws {
        let dir = try TempDir()
        #expect(symlink(dir.path("l2"), dir.path("l1")) == 0)
        #expect(symlink(dir.path("l1"), dir.path("l2")) == 0)
        _ = try dir.file("file", "x")
        let cases = [(dir.path("l1"), "too many levels of symbolic links"), (dir.path("file") + "/x.yaml", "a component of the path is a file"),
                     (dir.url.path, "is a directory"), (dir.path("missing"), "no such file")]
        // Every input path, each with the flag that named it.
        let commands: [(flag: String, args: (String) -> [String])] = [
            ("--password-file", { ["create-registry", "x", "--server", "r.example", "--username", "u", "--password-file", $0] }),
            ("--from-docker-config", { ["create-registry", "x", "--from-docker-config", $0] }),
            ("--policy", { ["replicate", "--policy", $0, "--from-manifests", "/tmp", "--dry-run"] }),
            ("keyring", { ["keys", "list", "--keyring", $0] }),
            ("-f", { ["index", "-f", $0] }),
        ]
        for (flag, args) in commands {
            for (path, words) in cases {
                if flag == "-f" && path == dir.url.path { continue }  // a directory is walked
                let r = try Self.limited(args(path))
                #expect(r.code == 2 && r.stderr.contains("\(flag) \(path): \(words)"), "\(flag) \(path): \(r.stderr)")
            }
        }
    }

    /// An exec credential plugin printing 200 MB: the client stops it at 1 MiB and the command exits 2.
    @Test func floodingExecPluginEndsInExitTwo() async throws {
        let e = try await KubeEmulator.start()
        defer { Task { await e.stop() } }
        let dir = try TempDir()
        _ = try dir.file("flood.sh", "#!/bin/sh\nhead -c 200000000 /dev/zero\n", mode: 0o700)
        _ = try dir.file("config", """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {server: '\(e.url)'}
            users:
            - name: u
              user:
                exec: {command: \(dir.path("flood.sh")), apiVersion: client.authentication.k8s.io/v1}
            contexts:
            - name: x
              context: {cluster: c, user: u}
            current-context: x

            """)
        let r = try Self.limited(["index", "--cluster", "--kubeconfig", dir.path("config"), "-A"])
        #expect(r.code == 2, "exit \(r.code): \(r.stderr.suffix(500))")
        #expect(r.stderr.contains("output larger than 1024 KiB"), "\(r.stderr.suffix(500))")
    }
}

extension TempDir {
    /// The path of `name` in the directory (nothing is created).
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}
