internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretCrypto

/// `dynsecret encrypt`: one Secret manifest into one KSR1 record.
struct Encrypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encrypt a Secret manifest into an at-rest record (KSR1).",
        discussion: """
            The record keeps the Secret's type and data (stringData merged), bound to its namespace, name, uid and \
            generation. It is sealed under the keyring's primary key, and also under a passphrase with --passphrase-file.

            Example:
              dynsecret encrypt --keyring keyring.yaml -f secret.yaml -o secret.ksr1
            """
    )
    @OptionGroup var keyring: KeyringOption
    @Option(name: .short, help: ArgumentHelp("Secret manifest (- for standard input).", valueName: "file"))
    var file: String
    @Option(name: .short, help: ArgumentHelp("Write the record here (mode 0600) instead of standard output.", valueName: "file"))
    var output: String?
    @Option(name: [.short, .long], help: "Namespace (default: the manifest's, else 'default').")
    var namespace: String?
    @Option(help: "Generation bound into the record (default: metadata.resourceVersion when numeric, else 0).")
    var generation: UInt64?
    @Option(name: .customLong("store-id"), help: "Store id bound into the record (default: none).")
    var storeID: String = ""
    @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("Also seal under the passphrase in this file.", valueName: "file"))
    var passphraseFile: String?

    func validate() throws {
        if file == "-" && passphraseFile == "-" { throw ValidationError("standard input can feed only one of -f - and --passphrase-file -") }
    }

    func run() throws {
        let ring = try keyring.load()
        let secret = try AtRestCLI.readSecret(file)
        guard let name = secret.metadata.name, !name.isEmpty else { throw CLIError("\(file): document 1: metadata.name: required") }
        let ns = namespace ?? secret.metadata.namespace ?? "default"
        let gen = generation ?? secret.metadata.resourceVersion.flatMap { UInt64($0) } ?? 0
        let context = RecordContext(storeID: storeID, namespace: ns, name: name, uid: secret.metadata.uid ?? "", generation: gen)
        var passphrase = try AtRestCLI.passphrase(passphraseFile)
        defer { if passphrase != nil { Cleanse.wipe(&passphrase!) } }
        let bytes: [UInt8]
        do {
            bytes = try AtRestRecord.seal(AtRestStore.payload(of: secret), context: context, keyring: ring, passphrase: passphrase, created: AtRestCLI.now().seconds)
        } catch {
            throw CLIError("\(file): \(error.description)")
        }
        try AtRestCLI.emit(bytes, to: output)
    }
}

/// `dynsecret decrypt`: one KSR1 record back into the Secret manifest.
struct Decrypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decrypt an at-rest record and print the Secret manifest.",
        discussion: """
            A tampered, truncated or moved record is refused with a one-line error naming it and the cause; \
            nothing is printed then. --namespace, --name and --store-id check where the record claims to belong.
            """
    )
    @Option(name: .customLong("keyring"), help: ArgumentHelp("Keyring file (YAML, mode 0600).", valueName: "file"))
    var keyringPath: String?
    @Argument(help: "Record file (- for standard input).")
    var record: String
    @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("Open the record's passphrase slot with the passphrase in this file.", valueName: "file"))
    var passphraseFile: String?
    @Option(name: [.short, .long], help: "Expected namespace.")
    var namespace: String?
    @Option(help: "Expected Secret name.")
    var name: String?
    @Option(name: .customLong("store-id"), help: "Expected store id.")
    var storeID: String?
    @Option(name: [.short, .long], help: "Output format.")
    var output: ObjectOutputFormat = .yaml

    func validate() throws {
        if keyringPath == nil && passphraseFile == nil { throw ValidationError("give --keyring FILE or --passphrase-file FILE") }
        if record == "-" && passphraseFile == "-" { throw ValidationError("standard input can feed only one of RECORD - and --passphrase-file -") }
    }

    func run() throws {
        var ring: Keyring?
        if let keyringPath {
            do { ring = try Keyring.load(path: keyringPath) } catch { throw CLIError(error.message) }
        }
        var passphrase = try AtRestCLI.passphrase(passphraseFile)
        defer { if passphrase != nil { Cleanse.wipe(&passphrase!) } }
        let bytes = try Input.read(record, what: "record", kind: .document)
        let opened: (record: ParsedRecord, payload: RecordPayload)
        do {
            opened = try AtRestRecord.open(bytes, keys: RecordKeys(keyring: ring, passphrase: passphrase),
                                           expecting: ExpectedContext(storeID: storeID, namespace: namespace, name: name))
        } catch {
            throw CLIError(error.located(record).description)
        }
        let secret = AtRestStore.secret(opened.payload, context: opened.record.context)
        CommandIO.current.writeStdout(output.render(secret))
    }
}
