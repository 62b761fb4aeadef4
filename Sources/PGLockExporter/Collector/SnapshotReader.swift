extension PostgresConnection {
    /// Reads one snapshot in a single round trip. The one query path shared by `serve`, `check`
    /// and `remediate`.
    public func readSnapshot(
        queryCharacters: Int = 0, lockDetails: Bool = false, identity: Bool = true, settings: Bool = true,
        statementTimeoutMilliseconds: Int
    ) throws -> ActivitySnapshot {
        let query = SnapshotQuery(
            serverVersion: serverVersion, queryCharacters: queryCharacters, lockDetails: lockDetails, identity: identity,
            settings: settings)
        var decoder = SnapshotQuery.Decoder(query)
        try executeBatch(query.sql(statementTimeoutMilliseconds: statementTimeoutMilliseconds)) { index, result in
            decoder.read(index, result)
        }
        return decoder.snapshot()
    }
}
