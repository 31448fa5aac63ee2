import DynSecretCLI
import Foundation

// A plugin that exits before reading its request, or a peer that closes a pipe early, must give a write error,
// not end the process: a broken pipe is reported where it happens.
signal(SIGPIPE, SIG_IGN)
exit(await CLI.run(Array(CommandLine.arguments.dropFirst())))
