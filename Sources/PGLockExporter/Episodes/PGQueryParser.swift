import CPGQuery

/// PostgreSQL's own parser (libpg_query, Debian's `libpg-query-dev`: PostgreSQL 15's grammar) for
/// the two things episodes need from it: a statement with its constants replaced by `$1`, `$2`…
/// and a fingerprint that is the same for statements that differ only in their constants.
///
/// This file is the only one that sees a libpg_query pointer: every result is copied into a Swift
/// `String` and freed with the library's own free function before returning. A statement the
/// grammar rejects (cut off, newer syntax, not SQL) is `nil`, never a partial result.
///
/// libpg_query keeps its parser state in thread-local memory contexts, so calls from several
/// threads at once are safe; each call is synchronous and stays on the calling thread.
enum PGQueryParser {
    /// The statement with the constants the parse tree has replaced by `$n` (numbered after the
    /// statement's own parameters), everything else as written, comments included; nil when the
    /// statement does not parse. libpg_query, like pg_stat_statements, leaves the constants of
    /// utility statements (`COPY ... FROM '/path'`, `CREATE VIEW ... AS SELECT 'x'`, `CALL p('x')`)
    /// and `UESCAPE '!'` as written: callers must not treat the result as literal-free.
    static func normalize(_ statement: String) -> String? {
        statement.withCString { input in
            let result = pg_query_normalize(input)
            defer { pg_query_free_normalize_result(result) }
            guard result.error == nil, let text = result.normalized_query else { return nil }
            return String(cString: text)
        }
    }

    /// The statement's fingerprint as libpg_query writes it (16 lowercase hex digits): the same for
    /// statements with the same parse tree apart from constants, comments and whitespace; nil when
    /// the statement does not parse.
    static func fingerprint(_ statement: String) -> String? {
        statement.withCString { input in
            let result = pg_query_fingerprint(input)
            defer { pg_query_free_fingerprint_result(result) }
            guard result.error == nil, let text = result.fingerprint_str else { return nil }
            return String(cString: text)
        }
    }
}
