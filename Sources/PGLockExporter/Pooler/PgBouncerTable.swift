/// One `SHOW` result of PgBouncer's admin console as text: column names and rows of cells.
///
/// Rows are read by column name, never by position: PgBouncer adds columns between versions
/// (1.18 has 18 in `SHOW CLIENTS`, later versions more), and a missing column leaves its field
/// empty rather than shifting every other. This is the outside input of the pooler join, and
/// what the `pgbouncer-listing` fuzz target feeds.
public struct PgBouncerTable: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String?]]

    public init(columns: [String], rows: [[String?]]) {
        self.columns = columns
        self.rows = rows
    }

    /// Copies a result out of libpq.
    init(_ result: borrowing PostgresResult) {
        columns = (0..<result.columnCount).map { result.columnName($0) }
        let columnCount = columns.count
        rows = (0..<result.rowCount).map { row in (0..<columnCount).map { result.string(row, $0) } }
    }

    /// Each row as a lookup by column name (the first column of a repeated name wins).
    func records() -> [Record] {
        var index: [String: Int] = [:]
        for (position, name) in columns.enumerated() where index[name] == nil { index[name] = position }
        return rows.map { Record(index: index, cells: $0) }
    }

    struct Record {
        let index: [String: Int]
        let cells: [String?]

        /// The cell of `column`; nil when the column is missing, the cell NULL or empty.
        subscript(_ column: String) -> String? {
            guard let position = index[column], position < cells.count, let cell = cells[position], !cell.isEmpty else { return nil }
            return cell
        }

        /// A port or pid: digits only, in range; nil otherwise.
        func integer(_ column: String) -> Int? {
            guard let text = self[column], text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int(text)
        }
    }
}
