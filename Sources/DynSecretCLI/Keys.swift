internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretCrypto

/// `dynsecret keys`: the keyring of key-encryption keys for at-rest records.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the keyring that protects at-rest records.",
        discussion: """
            A keyring holds key-encryption keys with ids: the primary key seals new records, decrypt-only keys \
            still open old ones, retired keys are kept out (their bytes are deleted). Key bytes are never printed.

            Rotation: 'keys rotate', then 'store rewrap', then 'keys retire OLD-KID --store DIR'.
            """,
        subcommands: [Generate.self, List.self, Rotate.self, Retire.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a keyring file (mode 0600) with one primary key.")
        @OptionGroup var keyring: KeyringOption

        func run() throws {
            if (try? AtomicFile.permissions(keyring.path)) != nil {
                throw CLIError("keyring \(keyring.path) already exists; use 'dynsecret keys rotate' to add a key")
            }
            let ring: Keyring
            do { ring = try Keyring.generate(now: AtRestCLI.now().text) } catch { throw CLIError(error.description) }
            // Linked into place, never renamed over: a keyring created meanwhile by another process is kept.
            do { try ring.save(path: keyring.path, replace: false) } catch { throw CLIError(error.message) }
            CommandIO.current.writeStdout(Array("created keyring \(keyring.path); primary key \(ring.primary!.id)\n".utf8))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List key ids, states and creation times (never key bytes).")
        @OptionGroup var keyring: KeyringOption

        func run() throws {
            let ring = try keyring.load()
            let rows = [["KID", "STATE", "CREATED"]] + ring.keys.map { [$0.id.description, $0.state.rawValue, $0.created] }
            CommandIO.current.writeStdout(Array(AtRestCLI.table(rows).utf8))
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new primary key; the old primary becomes decrypt-only.")
        @OptionGroup var keyring: KeyringOption

        func run() throws {
            let (old, new) = try AtRestCLI.updateKeyring(keyring.path) { (ring: inout Keyring) throws(CLIError) -> (KeyID?, KeyID) in
                let old = ring.primary?.id
                do throws(CryptoError) { return (old, try ring.rotate(now: AtRestCLI.now().text)) } catch { throw CLIError(error.description) }
            }
            var text = "new primary key \(new)"
            if let old { text += "; \(old) is now decrypt-only (run 'dynsecret store rewrap' to move records off it)" }
            CommandIO.current.writeStdout(Array((text + "\n").utf8))
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire a decrypt-only key: its bytes are deleted from the keyring.",
            discussion: "Refused (exit 1) while records in --store can be opened only with this key, unless --force."
        )
        @OptionGroup var keyring: KeyringOption
        @Argument(help: "Key id (or a unique prefix of at least 8 hex digits).")
        var kid: String
        @Option(help: ArgumentHelp("Store whose records must not depend on the key.", valueName: "dir"))
        var store: String?
        @Flag(help: "Retire even if records still need the key (they become unreadable with this keyring).")
        var force = false

        func run() throws {
            let id = try AtRestCLI.updateKeyring(keyring.path) { (ring: inout Keyring) throws(CLIError) -> KeyID in try retire(&ring) }
            CommandIO.current.writeStdout(Array("retired key \(id)\n".utf8))
        }

        /// Checks the store and retires the key in `ring` (called with the keyring locked).
        private func retire(_ ring: inout Keyring) throws(CLIError) -> KeyID {
            let id: KeyID
            do { id = try ring.find(kid) } catch { throw CLIError(error.message) }
            if let store {
                let s = try AtRestCLI.openStore(store)
                let others = ring.usableIDs.subtracting([id])
                var needing = 0
                do throws(StoreError) {
                    for loc in try s.records() {
                        let record = try s.parse(loc)
                        let ids = Set(record.keyIDs)
                        if ids.contains(id) && ids.isDisjoint(with: others) { needing += 1 }
                    }
                } catch {
                    throw CLIError(error.message)
                }
                if needing > 0 && !force {
                    throw CLIError("\(needing) record(s) in \(store) can be opened only with key \(id); run 'dynsecret store rewrap --store \(store) --keyring \(keyring.path)' first, or pass --force", exitCode: ExitStatus.findings)
                }
            } else if !force {
                throw CLIError("give --store DIR so records that still need key \(id) are counted, or --force")
            }
            do { try ring.retire(id) } catch { throw CLIError(error.message) }
            return id
        }
    }
}
