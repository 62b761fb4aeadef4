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
        try executePipelined(query.pipelined(statementTimeoutMilliseconds: statementTimeoutMilliseconds)) { index, result in
            decoder.read(index, result)
        }
        return decoder.snapshot()
    }

    /// Prepares the exporter's statements on this connection (once, after connecting).
    public func prepareSnapshotStatements() throws {
        try prepare(SnapshotQuery(serverVersion: serverVersion, identity: false, settings: true).preparedStatements)
    }

    /// The exporter's collection: like `readSnapshot`, but with the statements prepared by
    /// `prepareSnapshotStatements()`, in one pipelined round trip.
    public func readPreparedSnapshot(settings: Bool, statementTimeoutMilliseconds: Int) throws -> ActivitySnapshot {
        let query = SnapshotQuery(serverVersion: serverVersion, identity: false, settings: settings)
        var decoder = SnapshotQuery.Decoder(query)
        try executePrepared(query.preparedCalls(statementTimeoutMilliseconds: statementTimeoutMilliseconds)) { index, result in
            decoder.read(index, result)
        }
        return decoder.snapshot()
    }
}
