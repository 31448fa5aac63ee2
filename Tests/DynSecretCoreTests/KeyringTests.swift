import Testing
@testable import DynSecretCore

/// Upstream keyring vectors (kubelet `keyring_test.go`), research B6.
@Suite struct KeyringTests {
    /// Rows 1–15: raw `URLsMatchStr(key, lookup)`.
    @Test(arguments: [
        ("*.kubernetes.io", "prefix.kubernetes.io", true),
        ("prefix.*.io", "prefix.kubernetes.io", true),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
        ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true),
        ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true),
        ("*.kubernetes.io", "kubernetes.io", false),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
        ("*.*.kubernetes.io", "kubernetes.io", false),
        ("kubernetes.io", "kubernetes.com", false),
        ("k*.io", "quay.io", false),
        ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false),
        ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false),
    ])
    func urlsMatch(key: String, lookup: String, match: Bool) {
        #expect(CredentialKeyring.urlsMatch(key, lookup) == match)
    }

    /// Rows 16–44: `Add` the key, then `Lookup`.
    @Test(arguments: [
        ("https://hello.kubernetes.io", "hello.kubernetes.io/foo/bar", true),
        ("https://*.docker.io", "prefix.docker.io/foo/bar", true),
        ("https://prefix.*.io", "prefix.docker.io/foo/bar", true),
        ("https://prefix.docker.*", "prefix.docker.io/foo/bar", true),
        ("https://*.docker.io/path", "prefix.docker.io/path/foo/bar", true),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath/foo/bar", true),
        ("https://prefix.docker.*/path", "prefix.docker.io/path/foo/bar", true),
        ("https://*.docker.io:8888", "prefix.docker.io:8888/foo/bar", true),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888/foo/bar", true),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888/foo/bar", true),
        ("https://*.docker.io/path:1111", "prefix.docker.io/path:1111/foo/bar", true),
        ("https://*.docker.io/v1/", "prefix.docker.io/path:1111/foo/bar", true),
        ("https://*.docker.io/v2/", "prefix.docker.io/path:1111/foo/bar", true),
        ("https://prefix.docker.*/path:1111", "prefix.docker.io/path:1111/foo/bar", true),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path/foo/bar", true),
        ("*.docker.io:1111", "prefix.docker.io:1111/path/foo/bar", true),
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar/foo/bar", false),
        ("https://*.docker.com", "prefix.docker.io/foo/bar", false),
        ("https://suffix.*.io", "prefix.docker.io/foo/bar", false),
        ("https://prefix.docker.c*", "prefix.docker.io/foo/bar", false),
        ("https://prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111/foo/bar", false),
        ("suffix.*.io", "prefix.docker.io/foo/bar", false),
        ("https://index.docker.io/v1/", "world.mesos.org/foo/bar", false),
        ("https://index.docker.io/v1/", "google/docker-registry", true),
        ("https://index.docker.io/v1/", "jenkins", true),
        ("https://index.docker.io/v1/", "index.docker.io/v1//google/docker-registry", true),
        ("https://quay.io/v1/", "quay.io", true),
        ("https://quay.io/v1/", "quay.io/foo", true),
        ("https://quay.io/v1/", "quay.io/foo/bar", true),
    ])
    func addAndLookup(key: String, lookup: String, match: Bool) {
        var keyring = CredentialKeyring()
        keyring.add(configKey: key, credential: RegistryCredential(username: "u", password: "p"),
                    source: CredentialSource(namespace: "ns", secretName: "s", registryKey: key))
        let found = keyring.lookup(lookup)
        #expect(!found.isEmpty == match)
        if match { #expect(found.count == 1) }
    }

    @Test func dockerHubFallbackIsMarked() {
        var keyring = CredentialKeyring()
        keyring.add(configKey: "https://index.docker.io/v1/", credential: RegistryCredential(username: "u", password: "p"),
                    source: CredentialSource(namespace: "ns", secretName: "s", registryKey: "https://index.docker.io/v1/"))
        #expect(keyring.lookup("google/docker-registry").first?.reason == .dockerHubFallback)
        #expect(keyring.lookup("index.docker.io/v1//google/docker-registry").first?.reason == .key)
    }

    /// TestDockerKeyringLookup: order and string-prefix paths.
    @Test(arguments: [
        ("bar.example.com", ["ada"]),
        ("bar.example.com/pong", ["grace", "ada"]),
        ("bar.example.com/ping", ["ada"]),
        ("bar.example.com/pongz", ["grace", "ada"]),
        ("bar.example.com/pong/pang", ["grace", "ada"]),
        ("example.com", []),
        ("foo.example.com", []),
    ])
    func lookupOrder(image: String, users: [String]) {
        var keyring = CredentialKeyring()
        for (key, user) in [("bar.example.com/pong", "grace"), ("bar.example.com", "ada")] {
            keyring.add(configKey: key, credential: RegistryCredential(username: user, password: "p"),
                        source: CredentialSource(namespace: "ns", secretName: user, registryKey: key))
        }
        #expect(keyring.lookup(image).map(\.entry.credential.username) == users)
    }

    @Test(arguments: [("foo/bar", true), ("docker.io/foo/bar", true), ("index.docker.io/foo/bar", true), ("foo", true),
                      ("", false), ("registry.tld/foo/bar", false), ("registry:5000/foo/bar", false), ("myhostdocker.io/foo/bar", false)])
    func isDefaultRegistryMatch(image: String, expected: Bool) {
        #expect(CredentialKeyring.isDefaultRegistryMatch(image) == expected)
    }

    @Test(arguments: [
        ("https://index.docker.io/v1/", "index.docker.io"), ("index.docker.io", "index.docker.io"), ("https://quay.io/v1/", "quay.io"),
        ("https://registry.example.com/v2/team", "registry.example.com/team"), ("http://localhost:5000", "localhost:5000"),
        ("registry.example.com/team/", "registry.example.com/team/"), ("registry-?.example.com", "registry-"),
    ])
    func normalization(key: String, normalized: String) {
        #expect(CredentialKeyring.normalize(key) == normalized)
    }

    @Test(arguments: ["registry example.com", "host:port", "bad\u{01}host", "a%zz/b"])
    func keysTheKubeletDrops(key: String) {
        #expect(CredentialKeyring.normalize(key) == nil)
    }

    /// Research B, "consequences": Docker Hub and host/port/path cases through full image normalization.
    @Test(arguments: [
        (["https://index.docker.io/v1/"], "nginx", ["https://index.docker.io/v1/"]),
        (["docker.io"], "nginx:1.27", ["docker.io"]),
        (["https://index.docker.io/v1/myorg"], "myorg/app", []),
        (["docker.io/myorg", "https://index.docker.io/v1/"], "myorg/app", ["docker.io/myorg"]),
        (["registry.example.com"], "registry.example.com:5000/app", []),
        (["registry.example.com:5000"], "registry.example.com/app", []),
        (["*.example.com"], "a.b.example.com/app", []),
        (["registry.example.com/team"], "registry.example.com/teamx/app", ["registry.example.com/team"]),
        (["registry.example.com/team/"], "registry.example.com/team", []),
        (["Registry.Example.com"], "registry.example.com/app", []),
        (["*.example.com", "registry.example.com", "https://registry.example.com/v1/team", "reg*.example.com"], "registry.example.com/team/app",
         ["https://registry.example.com/v1/team", "registry.example.com", "reg*.example.com", "*.example.com"]),
    ])
    func imagesThroughTheKeyring(keys: [String], image: String, expected: [String]) throws {
        var keyring = CredentialKeyring()
        for key in keys {
            keyring.add(configKey: key, credential: RegistryCredential(username: key, password: "p"),
                        source: CredentialSource(namespace: "ns", secretName: "s", registryKey: key))
        }
        let name = try ImageReference.parse(image).name
        #expect(keyring.lookup(name).map(\.entry.source.registryKey) == expected)
    }

    @Test(arguments: [("a*", "abc", true), ("a?c", "abc", true), ("[a-c]b", "bb", true), ("[^a-c]b", "bb", false), ("a\\*", "a*", true),
                      ("[", "a", false), ("a[", "a", false), ("*x*y*z*", "axbyczd", true), ("*", "", true), ("a*b*c", "abc", true)])
    func goGlob(pattern: String, name: String, match: Bool) {
        #expect(GoGlob.match(pattern, name) == match)
    }
}

/// distribution/reference vectors (research D) and the kubelet's `parsers_test.go` (research B4).
@Suite struct ImageReferenceTests {
    @Test(arguments: [
        ("ubuntu", "docker.io", "library/ubuntu"), ("library/ubuntu", "docker.io", "library/ubuntu"),
        ("docker.io/foo", "docker.io", "library/foo"), ("index.docker.io/fooo/bar", "docker.io", "fooo/bar"),
        ("test_com/foo", "docker.io", "test_com/foo"), ("test.com/foo", "test.com", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"), ("localhost/fooo", "localhost", "fooo"),
        ("LOCALDOMAIN/fooo", "LOCALDOMAIN", "fooo"), ("Foo/bar", "Foo", "bar"),
        ("127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase"), ("busybox", "docker.io", "library/busybox"),
        ("root", "docker.io", "library/root"), ("root:tag", "docker.io", "library/root"),
        ("root@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "docker.io", "library/root"),
        ("user/repo", "docker.io", "user/repo"), ("user/repo:tag", "docker.io", "user/repo"),
        ("url:5000/repo", "url:5000", "repo"), ("url:5000/repo:tag", "url:5000", "repo"),
        ("nvcr.io/nvidia/tritonserver:24.08-py3", "nvcr.io", "nvidia/tritonserver"),
        ("[::1]:5000/repo", "[::1]:5000", "repo"), ("localhost", "docker.io", "library/localhost"),
        ("a.b/c__d/e-----f/g.h:tag_1.0-x", "a.b", "c__d/e-----f/g.h"),
    ])
    func normalizes(input: String, domain: String, path: String) throws {
        let ref = try ImageReference.parse(input)
        #expect(ref.domain == domain && ref.path == path)
        #expect(ref.name == domain + "/" + path)
    }

    @Test func tagAndDigest() throws {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        let ref = try ImageReference.parse("url:5000/repo:tag@" + d)
        #expect(ref.tag == "tag" && ref.digest == d)
    }

    @Test(arguments: [
        ("https://github.com/docker/docker", "invalid reference format"),
        ("docker/Docker", "invalid reference format: repository name (docker/Docker) must be lowercase"),
        ("-docker", "invalid reference format"),
        ("docker///docker", "invalid reference format"),
        ("[fc00::1]", "invalid reference format"),
        ("[fc00::1]:5000", "invalid reference format"),
        ("fc00::1:5000/debian", "invalid reference format"),
        ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "invalid repository name (e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855), cannot specify 64-byte hexadecimal strings"),
        ("", "invalid reference format"),
        ("repo@sha256:abc", "invalid reference format"),
        ("repo@sha256:" + String(repeating: "a", count: 63), "invalid checksum digest length"),
        ("repo:" + String(repeating: "t", count: 129), "invalid reference format"),
        ("a/" + String(repeating: "b", count: 254), "repository name must not be more than 255 characters"),
    ])
    func rejects(input: String, message: String) {
        #expect {
            try ImageReference.parse(input)
        } throws: { error in
            (error as? ImageReference.ParseError)?.message == message
        }
    }
}
