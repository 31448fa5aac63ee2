internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube
internal import DynSecretCrypto
internal import Foundation

/// `dynsecret store`: the directory of encrypted Secret versions the replicator keeps.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Inspect, rewrap, export and restore the at-rest store.",
        discussion: """
            Layout: DIR/store-id and DIR/records/NAMESPACE/NAME/GENERATION[-UID].ksr1, files 0600, written \
            atomically. Records are bound to the store and to their path: a record copied elsewhere does not open.
            """,
        subcommands: [Status.self, Put.self, Rewrap.self, Export.self, Restore.self]
    )

    struct StoreOption: ParsableArguments {
        @Option(name: .customLong("store"), help: ArgumentHelp("Store directory.", valueName: "dir"))
        var path: String
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count records per key id.",
            discussion: "With --verify every record is also decrypted; exit 1 when any record cannot be read or opened."
        )
        @OptionGroup var store: StoreOption
        @OptionGroup var keyring: KeyringOption
        @Flag(help: "Decrypt every record, not only its header.")
        var verify = false

        func run() throws {
            let ring = try keyring.load()
            let s = try AtRestCLI.openStore(store.path)
            var perKey: [KeyID: Int] = [:]
            var passphraseSlots = 0
            var problems: [String] = []
            var total = 0
            let locations: [RecordLocation]
            do { locations = try s.records() } catch { throw CLIError(error.message) }
            for loc in locations {
                total += 1
                do {
                    let record = try s.parse(loc)
                    for id in Set(record.keyIDs) { perKey[id, default: 0] += 1 }
                    if record.hasPassphraseSlot { passphraseSlots += 1 }
                    if verify { _ = try s.read(loc, keys: RecordKeys(keyring: ring)) }
                } catch {
                    problems.append(error.message)
                }
            }
            var rows = [["KID", "STATE", "RECORDS"]]
            let known = Set(ring.keys.map(\.id))
            for k in ring.keys { rows.append([k.id.description, k.state.rawValue, String(perKey[k.id] ?? 0)]) }
            for (id, n) in perKey.sorted(by: { $0.key < $1.key }) where !known.contains(id) { rows.append([id.description, "unknown", String(n)]) }
            var text = "store \(s.directory) (id \(s.storeID)): \(total) record(s)\n" + AtRestCLI.table(rows)
            if passphraseSlots > 0 { text += "records with a passphrase slot: \(passphraseSlots)\n" }
            if let leftovers = try? s.interruptedWrites(), !leftovers.isEmpty {
                text += "temporary files of interrupted writes (ignored, safe to delete): \(leftovers.count)\n"
            }
            CommandIO.current.writeStdout(Array(text.utf8))
            for p in problems { CommandIO.current.writeStderr("error: \(p)\n") }
            if !problems.isEmpty {
                throw CLIError("\(problems.count) of \(total) record(s) cannot be \(verify ? "opened" : "read")", exitCode: ExitStatus.findings)
            }
        }
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store a Secret manifest as a record (what the controller does for each source version).",
            discussion: "Creates the store when it does not exist."
        )
        @OptionGroup var store: StoreOption
        @OptionGroup var keyring: KeyringOption
        @Option(name: .short, help: ArgumentHelp("Secret manifest (- for standard input).", valueName: "file"))
        var file: String
        @Option(name: [.short, .long], help: "Namespace (default: the manifest's, else 'default').")
        var namespace: String?
        @Option(help: "Generation (default: metadata.resourceVersion when numeric, else 0).")
        var generation: UInt64?
        @Option(help: ArgumentHelp("Write the record this many times (each with a fresh data key); for crash tests.", visibility: .hidden))
        var `repeat`: Int = 1
        @Flag(name: .customLong("no-fsync"), help: "Skip fsync (atomic against process crashes, not power loss).")
        var noFsync = false

        func run() throws {
            let ring = try keyring.load()
            var secret = try AtRestCLI.readSecret(file)
            secret.metadata.namespace = namespace ?? secret.metadata.namespace ?? "default"
            let gen = generation ?? secret.metadata.resourceVersion.flatMap { UInt64($0) } ?? 0
            let s = try AtRestCLI.openStore(store.path, create: true, durable: !noFsync)
            var last: RecordLocation?
            for _ in 0..<max(1, self.repeat) {
                do { last = try s.write(secret, generation: gen, keyring: ring, created: AtRestCLI.now().seconds) } catch { throw CLIError(error.message) }
            }
            CommandIO.current.writeStdout(Array("\(last!.path)\n".utf8))
        }
    }

    struct Rewrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrap every record to the keyring's primary key (headers only; payload ciphertext unchanged)."
        )
        @OptionGroup var store: StoreOption
        @OptionGroup var keyring: KeyringOption

        func run() throws {
            let ring = try keyring.load()
            let s = try AtRestCLI.openStore(store.path)
            let locations: [RecordLocation]
            do { locations = try s.records() } catch { throw CLIError(error.message) }
            var changed = 0
            var failed = 0
            let progress = Progress("store rewrap: records", total: locations.count)
            for loc in locations {
                do {
                    if try s.rewrap(loc, keyring: ring) { changed += 1 }
                } catch {
                    progress.finish()
                    failed += 1
                    CommandIO.current.writeStderr("error: \(error.message)\n")
                }
                progress.advance()
            }
            progress.finish()
            let text = "rewrapped \(changed) of \(locations.count) record(s) to key \(ring.primary!.id); \(locations.count - changed - failed) already there\n"
            CommandIO.current.writeStdout(Array(text.utf8))
            if failed > 0 { throw CLIError("\(failed) record(s) could not be rewrapped", exitCode: ExitStatus.findings) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a backup bundle of every record, protected by a passphrase and/or a recovery keyring.",
            discussion: """
                The bundle's records are rewrapped (payloads unchanged) under a fresh bundle key, which is sealed \
                under the passphrase (scrypt) and/or the recovery keyring's primary key. A signed manifest lists \
                every record, so restore detects dropped, duplicated or rolled-back records.
                """
        )
        @OptionGroup var store: StoreOption
        @OptionGroup var keyring: KeyringOption
        @Option(name: .short, help: ArgumentHelp("Bundle file to write (mode 0600).", valueName: "file"))
        var output: String
        @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("Protect the bundle with the passphrase in this file.", valueName: "file"))
        var passphraseFile: String?
        @Option(name: .customLong("recovery-keyring"), help: ArgumentHelp("Protect the bundle with this keyring's primary key.", valueName: "file"))
        var recoveryKeyring: String?

        func validate() throws {
            if passphraseFile == nil && recoveryKeyring == nil { throw ValidationError("give --passphrase-file FILE or --recovery-keyring FILE (or both)") }
        }

        func run() throws {
            let ring = try keyring.load()
            let s = try AtRestCLI.openStore(store.path)
            var recovery: Keyring?
            if let recoveryKeyring {
                do { recovery = try Keyring.load(path: recoveryKeyring) } catch { throw CLIError(error.message) }
            }
            var passphrase = try AtRestCLI.passphrase(passphraseFile)
            defer { if passphrase != nil { Cleanse.wipe(&passphrase!) } }
            let bundle: [UInt8]
            do {
                bundle = try AtRestBundle.export(store: s, keyring: ring, passphrase: passphrase, recovery: recovery, created: AtRestCLI.now().seconds)
            } catch {
                throw CLIError(error.message)
            }
            try AtRestCLI.emit(bundle, to: output)
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write Secret manifests from the store or from a bundle.",
            discussion: """
                By default the latest generation of each Secret is written, as YAML documents separated by '---' on \
                standard output, or one file per Secret (NAMESPACE.NAME.yaml, mode 0600) with --out-dir. \
                With --out-dir every namespace must be a DNS-1123 label and every name a DNS-1123 subdomain (so the \
                file name is unambiguous and stays inside the directory), and no file may exist yet; otherwise \
                nothing is written. With --apply each Secret is created in the cluster, or updated there when it \
                exists (uid and resourceVersion of the recorded version are not reused); a failure on one Secret does \
                not stop the others, and the exit status is then 1.
                """
        )
        @Option(name: .customLong("store"), help: ArgumentHelp("Store directory.", valueName: "dir"))
        var store: String?
        @Option(name: .customLong("bundle"), help: ArgumentHelp("Bundle file written by 'store export'.", valueName: "file"))
        var bundle: String?
        @Option(name: .customLong("keyring"), help: ArgumentHelp("Keyring (the store's, or a bundle's recovery keyring).", valueName: "file"))
        var keyringPath: String?
        @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("A bundle's passphrase.", valueName: "file"))
        var passphraseFile: String?
        @Option(name: [.short, .long], help: "Only this namespace.")
        var namespace: String?
        @Option(help: "Only Secrets with this name.")
        var name: String?
        @Flag(name: .customLong("all-versions"), help: "Every stored generation, not only the latest.")
        var allVersions = false
        @Option(name: .customLong("out-dir"), help: ArgumentHelp("Write one manifest file per Secret here.", valueName: "dir"))
        var outDir: String?
        @Flag(name: .customLong("apply"), help: "Create or update the Secrets in the cluster instead of printing them.")
        var apply = false
        @OptionGroup var connection: ClusterConnection

        func validate() throws {
            if (store == nil) == (bundle == nil) { throw ValidationError("give exactly one of --store DIR and --bundle FILE") }
            if store != nil && keyringPath == nil { throw ValidationError("--store needs --keyring FILE") }
            if bundle != nil && keyringPath == nil && passphraseFile == nil { throw ValidationError("--bundle needs --passphrase-file FILE or --keyring FILE") }
            if allVersions && (outDir != nil || apply) { throw ValidationError("--all-versions writes to standard output only") }
            if apply && outDir != nil { throw ValidationError("give only one of --apply and --out-dir") }
        }

        func run() async throws {
            var ring: Keyring?
            if let keyringPath {
                do { ring = try Keyring.load(path: keyringPath) } catch { throw CLIError(error.message) }
            }
            var versions: [(context: RecordContext, secret: Secret)] = []
            if let store {
                let s = try AtRestCLI.openStore(store)
                do {
                    for loc in try s.records(namespace: namespace, name: name) {
                        let secret = try s.read(loc, keys: RecordKeys(keyring: ring))
                        versions.append((RecordContext(storeID: s.storeID, namespace: loc.namespace, name: loc.name, uid: loc.uid, generation: loc.generation), secret))
                    }
                } catch {
                    throw CLIError(error.message)
                }
            } else if let bundle {
                var passphrase = try AtRestCLI.passphrase(passphraseFile)
                defer { if passphrase != nil { Cleanse.wipe(&passphrase!) } }
                let bytes = try Input.read(bundle, what: "--bundle", kind: .bundle)
                do {
                    for (context, payload) in try AtRestBundle.open(bytes, keys: RecordKeys(keyring: ring, passphrase: passphrase))
                    where (namespace == nil || context.namespace == namespace) && (name == nil || context.name == name) {
                        versions.append((context, AtRestStore.secret(payload, context: context)))
                    }
                } catch {
                    throw CLIError("bundle \(bundle): \(error.description)")
                }
            }
            versions.sort { ($0.context.namespace, $0.context.name, $0.context.generation) < ($1.context.namespace, $1.context.name, $1.context.generation) }
            if !allVersions {
                var latest: [String: Int] = [:]
                for (i, v) in versions.enumerated() { latest["\(v.context.namespace)/\(v.context.name)"] = i }
                versions = versions.enumerated().filter { latest["\($0.element.context.namespace)/\($0.element.context.name)"] == $0.offset }.map(\.element)
            }
            if apply {
                try await Self.apply(versions.map(\.secret), connection: connection)
            } else if let outDir {
                try Self.writeFiles(versions, to: outDir)
                CommandIO.current.writeStderr("wrote \(versions.count) manifest(s) to \(outDir)\n")
            } else {
                CommandIO.current.writeStdout(Array(YAMLWriter.documents(versions.map(\.secret.json)).utf8))
            }
        }

        /// Creates or updates each Secret in the cluster; continues past failures and exits 1 when any failed.
        static func apply(_ secrets: [Secret], connection: ClusterConnection) async throws {
            let client = try connection.client(namespace: nil)
            var failed = 0
            // A restored Secret is a new object to the cluster: `apply` does not send the recorded identity and version.
            for secret in secrets {
                let id = "\(secret.metadata.namespace ?? client.config.namespace)/\(secret.metadata.name ?? "")"
                do {
                    let result = try await client.apply(secret)
                    CommandIO.current.writeStdout(Array("secret/\(id) \(result.verb)\n".utf8))
                } catch {
                    failed += 1
                    CommandIO.current.writeStderr("error: restoring secret/\(id): \(error.message)\n")
                }
            }
            if failed > 0 { throw ExitCode(ExitStatus.findings) }
        }

        /// Writes one NAMESPACE.NAME.yaml per version into `dir`, all or nothing.
        ///
        /// Names come from records (attacker-controlled in a bundle), so every one is checked before anything is
        /// written: the namespace must be a DNS-1123 label (no '.', so the first '.' of the file name separates it
        /// from the name and no two Secrets share a file) and the name a DNS-1123 subdomain (no '/', no '..').
        /// Existing files are never replaced; if a write fails, the files written before it are removed.
        static func writeFiles(_ versions: [(context: RecordContext, secret: Secret)], to dir: String) throws(CLIError) {
            var files: [(path: String, secret: Secret)] = []
            var seen = Set<String>()
            for v in versions {
                let ns = v.context.namespace, name = v.context.name
                let shown = "\(RecordError.display(ns))/\(RecordError.display(name))"
                if !KubeNames.dns1123LabelProblems(ns).isEmpty {
                    throw CLIError("record \(shown): namespace \"\(RecordError.display(ns))\" is not a DNS-1123 label; nothing written")
                }
                if !KubeNames.dns1123SubdomainProblems(name).isEmpty {
                    throw CLIError("record \(shown): name \"\(RecordError.display(name))\" is not a DNS-1123 subdomain; nothing written")
                }
                let file = "\(ns).\(name).yaml"
                guard seen.insert(file).inserted else { throw CLIError("records \(shown): two Secrets would be written to \(file); nothing written") }
                let path = "\(dir)/\(file)"
                if (try? AtomicFile.permissions(path)) != nil || FileManager.default.fileExists(atPath: path) {
                    throw CLIError("\(path) already exists; refusing to replace it; nothing written")
                }
                files.append((path, v.secret))
            }
            do { try AtomicFile.makeDirectory(dir) } catch { throw CLIError("cannot create \(error.description)") }
            var written: [String] = []
            for f in files {
                var text = Array(f.secret.yamlText.utf8)
                defer { Cleanse.wipe(&text) }
                do {
                    try AtomicFile.write(text, to: f.path, replace: false)
                    written.append(f.path)
                } catch {
                    for w in written { try? AtomicFile.remove(w) }
                    throw CLIError("cannot write \(error.description); nothing written")
                }
            }
        }
    }
}
