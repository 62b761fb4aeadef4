/// One statement of a collection: its SQL for the server's version, and the decoding of its
/// rows into plain values. `SnapshotBatch` sends them together; each type lives in its own file.
protocol SnapshotStatement: Sendable {
    associatedtype Rows
    /// The name under which the exporter prepares it once per connection.
    static var preparedName: String { get }
    var sql: String { get }
    func decode(_ result: borrowing PostgresResult) -> Rows
}
