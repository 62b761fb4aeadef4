/// A parsed scrape: samples by name and labels, for exact assertions.
struct Exposition {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []
    var text: String

    init(parsing text: String) throws {
        self.text = text
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            samples.append(try Self.parseLine(String(line)))
        }
    }

    static func parseLine(_ line: String) throws -> Sample {
        var name = ""
        var labels: [String: String] = [:]
        var index = line.startIndex
        while index < line.endIndex, line[index] != "{", line[index] != " " {
            name.append(line[index])
            index = line.index(after: index)
        }
        if index < line.endIndex, line[index] == "{" {
            index = line.index(after: index)
            while line[index] != "}" {
                var key = ""
                while line[index] != "=" { key.append(line[index]); index = line.index(after: index) }
                index = line.index(index, offsetBy: 2)  // ="
                var value = ""
                while line[index] != "\"" {
                    if line[index] == "\\" {
                        index = line.index(after: index)
                        switch line[index] {
                        case "n": value.append("\n")
                        default: value.append(line[index])
                        }
                    } else {
                        value.append(line[index])
                    }
                    index = line.index(after: index)
                }
                labels[key] = value
                index = line.index(after: index)
                if line[index] == "," { index = line.index(after: index) }
            }
            index = line.index(after: index)
        }
        let valueText = line[index...].trimmingPrefix(" ")
        guard let value = Double(valueText) ?? (valueText == "+Inf" ? .infinity : nil) else {
            throw TestFailure("cannot parse sample line: \(line)")
        }
        return Sample(name: name, labels: labels, value: value)
    }

    /// The samples of `name` whose labels include `matching`.
    func all(_ name: String, _ matching: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in
            sample.name == name && matching.allSatisfy { sample.labels[$0.key] == $0.value }
        }
    }

    /// The value of the one sample of `name` matching the labels; nil if there is none.
    func value(_ name: String, _ matching: [String: String] = [:]) -> Double? {
        let found = all(name, matching)
        return found.count == 1 ? found[0].value : nil
    }
}
