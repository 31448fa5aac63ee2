import DynSecretCLI
import Foundation

exit(await CLI.run(Array(CommandLine.arguments.dropFirst())))
