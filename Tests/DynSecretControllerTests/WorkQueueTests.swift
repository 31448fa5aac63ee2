import Testing
@testable import DynSecretController

@Suite struct WorkQueueTests {
    @Test func dedupsQueuedKeys() async {
        let q = WorkQueue<String>()
        q.add("a"); q.add("b"); q.add("a")
        #expect(q.depth == 2)
        #expect(await q.get() == "a")
        #expect(await q.get() == "b")
        #expect(q.depth == 0)
    }
}
