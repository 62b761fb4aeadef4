import CYAML

/// A configuration file's YAML as plain values, read by libyaml (Debian's `libyaml-dev`): all of
/// YAML 1.1 — flow collections (`{prometheus: "$2y$..."}`), block scalars (`dsn: >-`), anchors
/// and aliases, quoting styles, comments — the forms Helm's `toYaml` and people write.
///
/// Why libyaml and not Yams: Yams links all of Foundation (with ICU) into the binary, which
/// tripled its size and added several MiB of resident memory to an exporter that should cost
/// less than the one it sits beside. libyaml is a small C library behind a `.systemLibrary`
/// target, like libpq. This file is the only one that sees a libyaml pointer; callers get values.
///
/// What YAML leaves to the application is decided here once: a plain `~`, `null` or empty value
/// is `.null`; every other scalar is its text (`5`, `true` and quoted `"null"` alike; the
/// loaders decide what a field means); tags are read but not acted on; a duplicate key is an
/// error naming its line; only one document per file.
public indirect enum ConfigYAML: Equatable, Sendable {
    case scalar(String)
    case mapping([(key: String, value: ConfigYAML)])
    case sequence([ConfigYAML])
    case null

    public static func == (a: ConfigYAML, b: ConfigYAML) -> Bool {
        switch (a, b) {
        case (.scalar(let x), .scalar(let y)): x == y
        case (.sequence(let x), .sequence(let y)): x == y
        case (.null, .null): true
        case (.mapping(let x), .mapping(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// Where and why a file is not YAML this reader accepts; `line` counts from 1.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let line: Int
        public let problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    /// The entries of a mapping (an empty document or a `null` value counts as an empty mapping); nil otherwise.
    public var mapping: [(key: String, value: ConfigYAML)]? {
        switch self {
        case .mapping(let entries): entries
        case .null: []
        default: nil
        }
    }

    /// The text of a scalar; nil for anything else.
    public var string: String? {
        if case .scalar(let text) = self { return text }
        return nil
    }

    /// Deeper nesting, or more values once aliases are expanded, is refused: no config file needs
    /// it, and it bounds what a hostile file (the "billion laughs" of nested aliases) can cost.
    static let maxDepth = 64
    static let maxValues = 100_000

    /// Parses one YAML document; an empty file (or only comments) is `.null`.
    public static func parse(_ text: String) throws(ParseError) -> ConfigYAML {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return .null }
        let result = bytes.withUnsafeBufferPointer { load($0) }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw error
        }
    }

    /// Runs libyaml over `bytes` (which outlive the parser). The parser keeps a pointer to itself
    /// once given its input, so it lives at a fixed heap address, never in a movable Swift var.
    private static func load(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<ConfigYAML, ParseError> {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { return .failure(ParseError(line: 1, problem: "out of memory")) }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(parser, bytes.baseAddress, bytes.count)

        let document = UnsafeMutablePointer<yaml_document_t>.allocate(capacity: 1)
        defer { document.deallocate() }
        guard yaml_parser_load(parser, document) == 1 else { return .failure(parserError(parser.pointee, bytes)) }
        let value: Result<ConfigYAML, ParseError>
        if yaml_document_get_root_node(document) == nil {
            value = .success(.null)
        } else {
            var reader = DocumentReader(document: document)
            do throws(ParseError) { value = .success(try reader.value(of: 1, depth: 0)) } catch { value = .failure(error) }
        }
        yaml_document_delete(document)
        if case .failure = value { return value }

        // A second document would be ignored by a reader that stops at the first: refuse it.
        guard yaml_parser_load(parser, document) == 1 else { return .failure(parserError(parser.pointee, bytes)) }
        defer { yaml_document_delete(document) }
        if let second = yaml_document_get_root_node(document) {
            return .failure(ParseError(line: Int(second.pointee.start_mark.line) + 1, problem: "only one YAML document is allowed"))
        }
        return value
    }

    /// libyaml's own words for the problem, with the line it points at and what it was reading.
    private static func parserError(_ parser: yaml_parser_t, _ bytes: UnsafeBufferPointer<UInt8>) -> ParseError {
        let problem = parser.problem.map { String(cString: $0) } ?? "not valid YAML"
        switch parser.error {
        case YAML_MEMORY_ERROR:
            return ParseError(line: 1, problem: "out of memory")
        case YAML_READER_ERROR:
            // Encoding problems carry a byte offset, not a line.
            let offset = min(parser.problem_offset, bytes.count)
            let line = bytes[..<offset].reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            return ParseError(line: line, problem: problem)
        default:
            var text = problem
            if let context = parser.context {
                text += " (\(String(cString: context))"
                text += parser.context_mark.line == parser.problem_mark.line ? ")" : " at line \(parser.context_mark.line + 1))"
            }
            return ParseError(line: Int(parser.problem_mark.line) + 1, problem: text)
        }
    }

    /// Turns a loaded libyaml document into values; holds the document only while it is read.
    private struct DocumentReader {
        let document: UnsafeMutablePointer<yaml_document_t>
        var values = 0

        /// `index` is one libyaml handed out (the root, an item, a key or a value), so the node exists.
        mutating func value(of index: Int32, depth: Int) throws(ParseError) -> ConfigYAML {
            let node = yaml_document_get_node(document, index)!.pointee
            let line = Int(node.start_mark.line) + 1
            guard depth < ConfigYAML.maxDepth else { throw ParseError(line: line, problem: "nested more than \(ConfigYAML.maxDepth) levels deep") }
            values += 1
            guard values <= ConfigYAML.maxValues else {
                throw ParseError(line: line, problem: "more than \(ConfigYAML.maxValues) values once aliases are expanded")
            }
            switch node.type {
            case YAML_SCALAR_NODE:
                let scalar = node.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                if scalar.style == YAML_PLAIN_SCALAR_STYLE && ["", "~", "null", "Null", "NULL"].contains(text) { return .null }
                return .scalar(text)
            case YAML_SEQUENCE_NODE:
                var items: [ConfigYAML] = []
                var item = node.data.sequence.items.start
                while let current = item, current != node.data.sequence.items.top {
                    items.append(try value(of: current.pointee, depth: depth + 1))
                    item = current + 1
                }
                return .sequence(items)
            case YAML_MAPPING_NODE:
                var entries: [(key: String, value: ConfigYAML)] = []
                var pair = node.data.mapping.pairs.start
                while let current = pair, current != node.data.mapping.pairs.top {
                    let keyNode = yaml_document_get_node(document, current.pointee.key)!.pointee
                    let keyLine = Int(keyNode.start_mark.line) + 1
                    guard case .scalar(let key) = try value(of: current.pointee.key, depth: depth + 1) else {
                        throw ParseError(line: keyLine, problem: "a key must be text, not a list, mapping or null")
                    }
                    if entries.contains(where: { $0.key == key }) {
                        throw ParseError(line: keyLine, problem: "duplicate key \"\(TerminalText.excerpt(key))\"")
                    }
                    entries.append((key, try value(of: current.pointee.value, depth: depth + 1)))
                    pair = current + 1
                }
                return .mapping(entries)
            default:  // YAML_NO_NODE: libyaml never links one into a loaded document
                return .null
            }
        }
    }
}
