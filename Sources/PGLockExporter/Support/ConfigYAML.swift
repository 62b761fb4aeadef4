/// The YAML the configuration files use — block mappings, `- item` lists of scalars, plain,
/// single- and double-quoted scalars, comments, `{}` — parsed without a YAML library.
///
/// Why not Yams: it links all of Foundation (with ICU) into the binary, which tripled its size
/// and added several MiB of resident memory to an exporter that should cost less than the one it
/// sits beside. Anything outside this subset (anchors, flow collections, multi-line scalars,
/// tags) is an error naming the line, never a silent misreading.
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

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let line: Int
        public let problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    /// The entries of a mapping (an empty or `{}` document counts as an empty mapping); nil otherwise.
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

    private struct Line {
        var number: Int
        var indent: Int
        var text: Substring
    }

    public static func parse(_ text: String) throws(ParseError) -> ConfigYAML {
        var lines: [Line] = []
        // "\r\n" is one Character in Swift: split on both line ends, or a Windows file is one line.
        let rawLines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, raw) in rawLines.enumerated() {
            let number = index + 1
            var content = raw
            if content.hasSuffix("\r") { content = content.dropLast() }
            if content.contains("\t") && content.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
                throw ParseError(line: number, problem: "tabs are not allowed for indentation")
            }
            let indent = content.prefix(while: { $0 == " " }).count
            let body = try stripComment(content.dropFirst(indent), line: number)
            if body.isEmpty || (indent == 0 && (body == "---" || body == "...")) { continue }
            lines.append(Line(number: number, indent: indent, text: body))
        }
        var position = 0
        guard !lines.isEmpty else { return .null }
        let node = try parseBlock(lines, &position, indent: lines[0].indent)
        if position < lines.count {
            throw ParseError(line: lines[position].number, problem: "unexpected indentation")
        }
        return node
    }

    /// Removes a `#` comment (outside quotes) and trailing spaces.
    private static func stripComment(_ text: Substring, line: Int) throws(ParseError) -> Substring {
        var quote: Character?
        var previous: Character = " "
        for index in text.indices {
            let ch = text[index]
            if let open = quote {
                if ch == open { quote = nil }
            } else if ch == "'" || ch == "\"" {
                if previous == " " || previous == ":" || index == text.startIndex { quote = ch }
            } else if ch == "#" && (previous == " " || index == text.startIndex) {
                return text[..<index].dropLastWhile(" ")
            }
            previous = ch
        }
        return text.dropLastWhile(" ")
    }

    private static func parseBlock(_ lines: [Line], _ position: inout Int, indent: Int) throws(ParseError) -> ConfigYAML {
        if lines[position].text.hasPrefix("- ") || lines[position].text == "-" {
            var items: [ConfigYAML] = []
            while position < lines.count, lines[position].indent == indent,
                lines[position].text.hasPrefix("- ") || lines[position].text == "-"
            {
                let line = lines[position]
                let item = line.text.dropFirst(1).drop(while: { $0 == " " })
                if item.contains(": ") || item.hasSuffix(":") {
                    throw ParseError(line: line.number, problem: "mappings inside lists are not supported here")
                }
                items.append(try scalar(item, line: line.number))
                position += 1
            }
            return .sequence(items)
        }
        var entries: [(key: String, value: ConfigYAML)] = []
        while position < lines.count, lines[position].indent == indent {
            let line = lines[position]
            guard let (key, rest) = try splitKey(line) else {
                throw ParseError(line: line.number, problem: "expected \"key: value\"")
            }
            if entries.contains(where: { $0.key == key }) {
                throw ParseError(line: line.number, problem: "duplicate key \"\(key)\"")
            }
            position += 1
            if rest.isEmpty {
                if position < lines.count, lines[position].indent > indent {
                    entries.append((key, try parseBlock(lines, &position, indent: lines[position].indent)))
                } else {
                    entries.append((key, .null))
                }
            } else {
                entries.append((key, try scalar(rest, line: line.number)))
            }
        }
        if position < lines.count, lines[position].indent > indent {
            throw ParseError(line: lines[position].number, problem: "unexpected indentation")
        }
        return .mapping(entries)
    }

    /// `key: rest` with the key plain or quoted; nil when the line has no key.
    private static func splitKey(_ line: Line) throws(ParseError) -> (String, Substring)? {
        let text = line.text
        if let first = text.first, first == "'" || first == "\"" {
            let (key, after) = try quoted(text, line: line.number)
            guard after.hasPrefix(":") else { return nil }
            return (key, after.dropFirst().drop(while: { $0 == " " }))
        }
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == ":" {
                let next = text.index(after: index)
                if next == text.endIndex || text[next] == " " {
                    let key = String(text[..<index]).trimmingSpaces
                    guard !key.isEmpty else { return nil }
                    return (key, text[next...].drop(while: { $0 == " " }))
                }
            }
            index = text.index(after: index)
        }
        return nil
    }

    private static func scalar(_ text: Substring, line: Int) throws(ParseError) -> ConfigYAML {
        if text.isEmpty || text == "~" || text == "null" { return .null }
        if text == "{}" { return .mapping([]) }
        if text == "[]" { return .sequence([]) }
        if let first = text.first {
            if first == "'" || first == "\"" {
                let (value, after) = try quoted(text, line: line)
                guard after.isEmpty else { throw ParseError(line: line, problem: "text after a quoted value") }
                return .scalar(value)
            }
            if "[{&*!|>%@`".contains(first) {
                throw ParseError(line: line, problem: "\"\(first)\" (flow collections, anchors, tags, block scalars) is not supported here")
            }
        }
        return .scalar(String(text))
    }

    /// A quoted scalar at the start of `text` and what follows it.
    private static func quoted(_ text: Substring, line: Int) throws(ParseError) -> (String, Substring) {
        let quote = text.first!
        var value = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let ch = text[index]
            if ch == quote {
                let next = text.index(after: index)
                if quote == "'", next < text.endIndex, text[next] == "'" {
                    value.append("'")
                    index = text.index(after: next)
                    continue
                }
                return (value, text[next...].drop(while: { $0 == " " }))
            }
            if quote == "\"" && ch == "\\" {
                index = text.index(after: index)
                guard index < text.endIndex else { break }
                switch text[index] {
                case "n": value.append("\n")
                case "t": value.append("\t")
                case "\"": value.append("\"")
                case "\\": value.append("\\")
                case "/": value.append("/")
                default: throw ParseError(line: line, problem: "unsupported escape \\\(text[index])")
                }
            } else {
                value.append(ch)
            }
            index = text.index(after: index)
        }
        throw ParseError(line: line, problem: "unterminated quoted value")
    }
}

extension Substring {
    fileprivate func dropLastWhile(_ character: Character) -> Substring {
        var end = endIndex
        while end > startIndex, self[index(before: end)] == character { end = index(before: end) }
        return self[startIndex..<end]
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
