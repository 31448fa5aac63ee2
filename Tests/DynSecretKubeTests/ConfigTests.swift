import DynSecretKube
import Foundation
import Testing

@Suite struct ConfigTests {
    @Test func noConfigurationSaysWhyEachPlaceFailed() throws {
        #expect(throws: KubeConfigError.self) {
            _ = try KubeConfigLoader.load(environment: ["HOME": "/nonexistent-home"], inClusterRoot: "/nonexistent")
        }
        do {
            _ = try KubeConfigLoader.load(environment: ["HOME": "/nonexistent-home"], inClusterRoot: "/nonexistent")
        } catch {
            #expect(error.message == "no Kubernetes configuration found: KUBECONFIG is not set; /nonexistent-home/.kube/config: no such file; in-cluster: KUBERNETES_SERVICE_HOST is not set")
        }
    }
}
