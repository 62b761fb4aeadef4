extension PostgresConnection {
    /// Reads one snapshot in a single round trip. The one query path shared by `serve`, `check`
    /// and `remediate`.
    public func readSnapshot(
        queryCharacters: Int = 0, lockDetails: Bool = false, statementTimeoutMilliseconds: Int
    ) throws -> ActivitySnapshot {
        let query = SnapshotQuery(serverVersion: serverVersion, queryCharacters: queryCharacters, lockDetails: lockDetails)
        var decoder = SnapshotQuery.Decoder(query)
        try executeBatch(query.sql(statementTimeoutMilliseconds: statementTimeoutMilliseconds)) { index, result in
            decoder.read(index, result)
        }
        return decoder.snapshot()
    }
}
