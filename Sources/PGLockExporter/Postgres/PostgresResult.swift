import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `PGresult`, owned: `PQclear` runs exactly once, when the value goes away.
///
/// Non-copyable so it cannot be cleared twice or escape its connection call; callers read it in
/// a `borrowing` closure and copy out Swift values. All values are in libpq's text format.
public struct PostgresResult: ~Copyable {
    private let raw: OpaquePointer

    init(taking raw: OpaquePointer) { self.raw = raw }

    deinit { PQclear(raw) }

    public var rowCount: Int { Int(PQntuples(raw)) }
    public var columnCount: Int { Int(PQnfields(raw)) }

    var status: ExecStatusType { PQresultStatus(raw) }

    var error: PostgresError {
        let sqlState = PQresultErrorField(raw, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        return PostgresError(kind: .query, sqlState: sqlState, message: String(cString: PQresultErrorMessage(raw)))
    }

    /// The name of a column, as the server sent it (`PQfname`).
    public func columnName(_ column: Int) -> String {
        PQfname(raw, Int32(column)).map { String(cString: $0) } ?? ""
    }

    public func isNull(_ row: Int, _ column: Int) -> Bool {
        PQgetisnull(raw, Int32(row), Int32(column)) != 0
    }

    /// The cell as a string, or nil for SQL NULL.
    public func string(_ row: Int, _ column: Int) -> String? {
        if isNull(row, column) { return nil }
        return String(cString: PQgetvalue(raw, Int32(row), Int32(column)))
    }

    /// The cell as a number, parsed in place without building a `String`; nil for NULL or text
    /// that is not a number.
    public func double(_ row: Int, _ column: Int) -> Double? {
        if isNull(row, column) { return nil }
        guard let cell = PQgetvalue(raw, Int32(row), Int32(column)), cell.pointee != 0 else { return nil }
        var end: UnsafeMutablePointer<CChar>?
        let value = strtod(cell, &end)
        guard let end, end.pointee == 0 else { return nil }
        return value
    }

    public func int(_ row: Int, _ column: Int) -> Int? {
        if isNull(row, column) { return nil }
        guard let cell = PQgetvalue(raw, Int32(row), Int32(column)), cell.pointee != 0 else { return nil }
        var end: UnsafeMutablePointer<CChar>?
        let value = strtoll(cell, &end, 10)
        guard let end, end.pointee == 0 else { return nil }
        return Int(value)
    }

    /// A boolean cell (`t` / `f`); nil for NULL.
    public func bool(_ row: Int, _ column: Int) -> Bool? {
        if isNull(row, column) { return nil }
        return PQgetvalue(raw, Int32(row), Int32(column)).pointee == CChar(UInt8(ascii: "t"))
    }

    /// An `int4[]` cell such as `{101,102}`; nil for NULL.
    public func int32Array(_ row: Int, _ column: Int) -> [Int32]? {
        if isNull(row, column) { return nil }
        var values: [Int32] = []
        var current: Int32 = 0
        var inNumber = false
        var negative = false
        var cursor = PQgetvalue(raw, Int32(row), Int32(column))!
        while cursor.pointee != 0 {
            let byte = UInt8(bitPattern: cursor.pointee)
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                current = current &* 10 &+ Int32(byte - UInt8(ascii: "0"))
                inNumber = true
            case UInt8(ascii: "-"):
                negative = true
            default:
                if inNumber { values.append(negative ? -current : current) }
                current = 0
                inNumber = false
                negative = false
            }
            cursor += 1
        }
        if inNumber { values.append(negative ? -current : current) }
        return values
    }
}

/// The columns of one statement's result, named: `enum Column: Int, ResultColumn { case pid, … }`
/// in the order of the SELECT list, so decoding never counts positions by hand.
public protocol ResultColumn: RawRepresentable where RawValue == Int {}

extension PostgresResult {
    public func isNull<C: ResultColumn>(_ row: Int, _ column: C) -> Bool { isNull(row, column.rawValue) }
    public func string<C: ResultColumn>(_ row: Int, _ column: C) -> String? { string(row, column.rawValue) }
    public func double<C: ResultColumn>(_ row: Int, _ column: C) -> Double? { double(row, column.rawValue) }
    public func int<C: ResultColumn>(_ row: Int, _ column: C) -> Int? { int(row, column.rawValue) }
    public func bool<C: ResultColumn>(_ row: Int, _ column: C) -> Bool? { bool(row, column.rawValue) }
    public func int32Array<C: ResultColumn>(_ row: Int, _ column: C) -> [Int32]? { int32Array(row, column.rawValue) }
}
