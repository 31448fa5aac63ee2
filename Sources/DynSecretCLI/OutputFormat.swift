internal import ArgumentParser
internal import DynSecretCore

/// `-o` choices for commands that print Kubernetes objects.
enum ObjectOutputFormat: String, ExpressibleByArgument, CaseIterable {
    case yaml, json

    /// The text of `secret` in this format, exactly as kubectl prints it.
    func render(_ secret: Secret) -> [UInt8] {
        switch self {
        case .yaml: Array(secret.yamlText.utf8)
        case .json: secret.jsonText
        }
    }
}
